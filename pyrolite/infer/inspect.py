"""Model structure from one traced run (Pyro's ``pyro.infer.inspect``).

Each sample and param value is marked with its site name (provenance tracking), so a
site depends on exactly the sites whose values flow into its log-density. From that:
``get_model_relations`` (edges, plates, distributions), ``get_dependencies`` (prior and
moralized posterior dependencies), and ``render_model`` (a ``graphviz.Digraph``).
"""

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Union

import torch

from ..distributions.delta import Delta
from ..distributions.expanded import ExpandedDistribution
from ..distributions.masked import MaskedDistribution
from ..ops.provenance import ProvenanceTensor, detach_provenance, get_provenance  # noqa: F401
from ..ops.provenance import track_provenance as _track_provenance
from ..poutine.handlers import trace as _trace
from ..poutine.messenger import Messenger
from ..process_state import validation_enabled
from ..util import site_is_subsample

# Wrappers that change shapes or masks but not which family a site samples from.
_WRAPPERS = (torch.distributions.Independent, MaskedDistribution, ExpandedDistribution)

if TYPE_CHECKING:  # an optional extra, imported where used
    import graphviz

_CLONE = "__CLONE"
_RENDER_EXTRA = "pip install pyrolite[render]"


def _base_dist(fn):
    while isinstance(fn, _WRAPPERS):
        fn = fn.base_dist
    return fn


def site_is_deterministic(msg: dict) -> bool:
    """True for the sites ``pyrolite.deterministic`` records.

    >>> site_is_deterministic({"type": "sample", "infer": {"_deterministic": True}})
    True
    """
    return msg["type"] == "sample" and bool(msg.get("infer", {}).get("_deterministic", False))


def is_sample_site(msg: dict, *, include_deterministic: bool = False) -> bool:
    """True for a sample site that carries information of its own: not a plate's subsample
    indices and, unless ``include_deterministic``, not a ``Delta`` site (which includes
    ``deterministic`` sites) nor an observation masked out by ``poutine.mask(mask=False)``.

    >>> import pyrolite.distributions as dist
    >>> msg = {"type": "sample", "fn": dist.Delta(torch.tensor(1.0)), "is_observed": False,
    ...        "mask": None, "infer": {}}
    >>> is_sample_site(msg), is_sample_site(msg, include_deterministic=True)
    (False, True)
    """
    if msg["type"] != "sample" or site_is_subsample(msg):
        return False
    if not include_deterministic:
        if msg["is_observed"] and msg["mask"] is False:
            return False
        if isinstance(_base_dist(msg["fn"]), Delta):
            return False
    return True


class TrackProvenance(Messenger):
    """Mark each sample site's value (see :func:`is_sample_site`) and each param's value
    with the site's name, replacing what the value carried before; downstream tensors then
    name the sites they were computed from (``get_provenance``).

    >>> import pyrolite, pyrolite.distributions as dist
    >>> with TrackProvenance():
    ...     x = pyrolite.sample("x", dist.Normal(0.0, 1.0))
    ...     y = pyrolite.sample("y", dist.Normal(x, 1.0))
    >>> sorted(get_provenance(x + y))
    ['x', 'y']
    """

    def __init__(self, *, include_deterministic: bool = False):
        self.include_deterministic = include_deterministic

    def _pyro_post_sample(self, msg: dict) -> None:
        if is_sample_site(msg, include_deterministic=self.include_deterministic):
            msg["value"] = _track(msg["value"], msg["name"])

    def _pyro_post_param(self, msg: dict) -> None:
        msg["value"] = _track(msg["value"], msg["name"])


def _track(value, name: str):
    return _track_provenance(detach_provenance(value), frozenset({name}))


def _traced_run(model: Callable, model_args, model_kwargs, include_deterministic: bool):
    """One run of ``model`` with provenance tracking: no gradients, no validation, and the
    global RNG left as it was (inspecting a model does not change a later run)."""
    model_args = () if model_args is None else model_args
    model_kwargs = {} if model_kwargs is None else model_kwargs
    with torch.random.fork_rng(devices=[]), torch.no_grad(), validation_enabled(False):
        with TrackProvenance(include_deterministic=include_deterministic):
            return _trace(model).get_trace(*model_args, **model_kwargs)


def _sample_sites(trace) -> Dict[str, dict]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


def _log_prob_provenance(site: dict) -> frozenset:
    """The site names the site's log-density (a deterministic site: its value, as the
    model computed it) was computed from."""
    if site_is_deterministic(site):
        # Its value may have been re-marked with its own name; the point mass still holds
        # the value as computed.
        return get_provenance(_base_dist(site["fn"]).v)
    value = site["value"]
    if isinstance(value, torch.Tensor):
        # A fresh alias, so a distribution's shortcut for scoring its own draw (``x is v``)
        # still computes through the value and carries its marks.
        value = value.view_as(value)
    return get_provenance(site["fn"].log_prob(value))


def _dist_name(site: dict) -> str:
    if site_is_deterministic(site):
        return "Deterministic"
    return type(_base_dist(site["fn"])).__name__


def get_dependencies(
    model: Callable,
    model_args: Optional[tuple] = None,
    model_kwargs: Optional[dict] = None,
    include_deterministic: bool = False,
) -> Dict[str, object]:
    """The dependency structure of a (conditioned) model, from one run.

    Returns ``{"prior_dependencies": ..., "posterior_dependencies": ...}``:
    ``prior_dependencies[d][u]`` for each sample site ``d`` and each latent ``u`` its
    log-density depends on (and ``d`` itself), in model order;
    ``posterior_dependencies[u][v]`` for each latent ``u``, reversed and moralized (two
    latents sharing a child depend on each other). Each value is the set of plates in which
    the dependency is all-to-all (e.g. latents in a plate whose child lies outside it).
    ``deterministic`` and ``Delta`` sites are left out.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     b = pyrolite.sample("b", dist.LogNormal(0.0, 1.0))
    ...     c = pyrolite.sample("c", dist.Normal(a, b))
    ...     pyrolite.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))
    >>> posterior = get_dependencies(model)["posterior_dependencies"]
    >>> posterior["a"], posterior["c"]
    ({'a': set(), 'c': set(), 'b': set()}, {'c': set(), 'd': set()})
    """
    trace = _traced_run(model, model_args, model_kwargs, include_deterministic)
    sites = [(name, s) for name, s in trace.nodes.items() if is_sample_site(s)]
    plates = {
        name: {f.name for f in site["cond_indep_stack"] if f.vectorized} for name, site in sites
    }

    prior: Dict[str, Dict[str, set]] = {}
    with torch.no_grad():
        for i, (name, site) in enumerate(sites):
            prior[name] = {name: set()}
            upstream = [u for u, s in sites[:i] if not s["is_observed"]]
            if not upstream:
                continue
            provenance = _log_prob_provenance(site)
            for u in upstream:
                if u in provenance:
                    prior[name][u] = set()

    posterior: Dict[str, Dict[str, set]] = {
        name: {name: set()} for name, site in sites if not site["is_observed"]
    }
    # Reversed edges first, then moralization: that is the order of the keys in Pyro's dicts.
    for d, upstream in prior.items():
        for u in upstream:
            if u != d:
                posterior[u][d] = set()
    for d, upstream in prior.items():
        parents = [u for u in upstream if u != d]
        for i, u1 in enumerate(parents):
            for u2 in parents[i:]:
                coupled = (plates[u1] & plates[u2]) - plates[d]
                posterior[u1].setdefault(u2, set()).update(coupled)
    return {"prior_dependencies": prior, "posterior_dependencies": posterior}


def get_model_relations(
    model: Callable,
    model_args: Optional[tuple] = None,
    model_kwargs: Optional[dict] = None,
    include_deterministic: bool = False,
) -> dict:
    """Relations among the sites and plates of ``model``, from one run.

    ``sample_sample`` maps each sample site to the sample sites its log-density depends
    on; ``sample_param`` to the params it depends on; ``sample_dist`` to its family's name;
    ``param_constraint`` maps each param to its constraint; ``plate_sample`` each plate to
    its sites (a plate whose sites are not nested consistently with another plate's is
    split, the rest going to ``"<plate>__CLONE"``); ``observed`` lists the observed sites.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> def model(data):
    ...     m = pyrolite.sample("m", dist.Normal(0.0, 1.0))
    ...     sd = pyrolite.sample("sd", dist.LogNormal(m, 1.0))
    ...     with pyrolite.plate("N", len(data)):
    ...         pyrolite.sample("obs", dist.Normal(m, sd), obs=data)
    >>> relations = get_model_relations(model, (torch.ones(3),))
    >>> relations["sample_sample"], relations["plate_sample"], relations["observed"]
    ({'m': [], 'sd': ['m'], 'obs': ['m', 'sd']}, {'N': ['obs']}, ['obs'])
    """
    trace = _traced_run(model, model_args, model_kwargs, include_deterministic)
    samples = _sample_sites(trace)
    params = {name: site for name, site in trace.nodes.items() if site["type"] == "param"}

    sample_sample, sample_param = {}, {}
    with torch.no_grad():
        for name, site in samples.items():
            provenance = _log_prob_provenance(site)
            sample_sample[name] = [u for u in samples if u in provenance and u != name]
            sample_param[name] = [p for p in params if p in provenance]

    plate_sample: Dict[str, List[str]] = {}
    for name, site in samples.items():
        for frame in site["cond_indep_stack"]:
            plate_sample.setdefault(frame.name, []).append(name)
    _split_overlapping_plates(plate_sample)

    return {
        "sample_sample": sample_sample,
        "sample_param": sample_param,
        "sample_dist": {name: _dist_name(site) for name, site in samples.items()},
        "param_constraint": {name: str(_param_constraint(site)) for name, site in params.items()},
        "plate_sample": plate_sample,
        "observed": [name for name, site in samples.items() if site["is_observed"]],
    }


def _param_constraint(site: dict):
    # A param message's args are (name, init, constraint, event_dim).
    args = site["args"]
    constraint = args[2] if len(args) > 2 else None
    return torch.distributions.constraints.real if constraint is None else constraint


def _split_overlapping_plates(plate_sample: Dict[str, List[str]]) -> None:
    """Make every two plates nested or disjoint, in place: where a later plate shares sites
    with an earlier one but neither holds the other, the later keeps the shared sites and
    the rest move to a clone (``"<plate>__CLONE"``, itself checked against later plates)."""
    names = list(plate_sample)
    i = 0
    while i < len(names):
        for j in range(i + 1, len(names)):
            first, later = set(plate_sample[names[i]]), set(plate_sample[names[j]])
            if not (first & later) or first <= later or later <= first:
                continue
            sites = plate_sample[names[j]]
            clone = names[j] + _CLONE
            plate_sample[names[j]] = [s for s in sites if s in first]
            plate_sample[clone] = [s for s in sites if s not in first]
            if clone not in names:
                names.append(clone)
        i += 1


def generate_graph_specification(model_relations: dict, render_params: bool = False) -> dict:
    """Model relations (:func:`get_model_relations`) as the nodes, clusters and edges of a
    graph: ``plate_groups`` (the sites of each plate; ``None``: those in no plate),
    ``plate_data`` (each plate's parent plate), ``node_data`` and ``edge_list``.

    >>> relations = {"sample_sample": {"a": [], "b": ["a"]}, "sample_param": {"a": [], "b": []},
    ...              "sample_dist": {"a": "Normal", "b": "Normal"}, "param_constraint": {},
    ...              "plate_sample": {"N": ["b"]}, "observed": ["b"]}
    >>> spec = generate_graph_specification(relations)
    >>> spec["plate_groups"], spec["plate_data"], spec["edge_list"]
    ({'N': ['b'], None: ['a']}, {'N': {'parent': None}}, [('a', 'b')])
    """
    plate_sample = model_relations["plate_sample"]
    plate_groups = {plate: list(sites) for plate, sites in plate_sample.items()}
    in_plates = {site for sites in plate_sample.values() for site in sites}
    plate_groups[None] = [s for s in model_relations["sample_sample"] if s not in in_plates]
    if render_params:
        used = {p for params in model_relations["sample_param"].values() for p in params}
        plate_groups[None].extend(p for p in model_relations["param_constraint"] if p in used)

    plate_data: Dict[str, dict] = {}
    for p1, p2 in itertools.combinations(plate_sample, 2):
        s1, s2 = set(plate_sample[p1]), set(plate_sample[p2])
        if s2 <= s1:
            plate_data[p2] = {"parent": p1}
        elif s1 < s2:
            plate_data[p1] = {"parent": p2}
        elif s1 & s2:
            raise NotImplementedError(
                f"Overlapping non-nested plates '{p1}','{p2}' are not supported by "
                f"render_model(): sites {sorted(s1 & s2)} lie in both, and each also holds "
                "sites the other lacks. Nest one plate inside the other (get_model_relations "
                "splits such plates into '<plate>__CLONE' parts), see "
                "https://github.com/pyro-ppl/pyro/issues/2980"
            )
    for plate in plate_sample:
        plate_data.setdefault(plate, {"parent": None})

    observed = set(model_relations["observed"])
    node_data: Dict[str, dict] = {
        rv: {"is_observed": rv in observed, "distribution": dist_name}
        for rv, dist_name in model_relations["sample_dist"].items()
    }
    edge_list = [(u, rv) for rv, us in model_relations["sample_sample"].items() for u in us]
    if render_params:
        for param, constraint in model_relations["param_constraint"].items():
            node_data[param] = {
                "is_observed": False,
                "constraint": constraint,
                "distribution": None,
            }
        edge_list += [(p, rv) for rv, ps in model_relations["sample_param"].items() for p in ps]
    return {
        "plate_groups": plate_groups,
        "plate_data": plate_data,
        "node_data": node_data,
        "edge_list": edge_list,
    }


def _import_graphviz():
    try:
        import graphviz
    except ImportError as e:
        raise ImportError(
            "render_model needs the graphviz Python package, an optional extra of pyrolite: "
            f"{_RENDER_EXTRA} (or pip install graphviz); saving to a file also needs "
            "Graphviz's `dot` program (https://graphviz.org/download/)."
        ) from e
    return graphviz


def _node_attributes(rv: str, data: dict) -> dict:
    is_observed = data["is_observed"]
    # None: observed in some of render_model's runs and latent in others.
    fillcolor = "gray:white" if is_observed is None else "gray" if is_observed else "white"
    return {
        "label": rv,
        "shape": "plain" if data["distribution"] is None else "ellipse",
        "style": "filled,dashed" if data["distribution"] == "Deterministic" else "filled",
        "fillcolor": fillcolor,
    }


def render_graph(
    graph_specification: dict, render_distributions: bool = False
) -> "graphviz.Digraph":
    """A ``graphviz.Digraph`` of a graph specification (:func:`generate_graph_specification`):
    one cluster per plate, observed sites filled gray, deterministic sites dashed, params as
    plain text; ``render_distributions`` adds a legend naming each site's distribution.
    """
    graphviz = _import_graphviz()
    plate_groups = graph_specification["plate_groups"]
    plate_data = graph_specification["plate_data"]
    node_data = graph_specification["node_data"]

    graph = graphviz.Digraph()
    plate_graphs = {}
    for plate, rvs in plate_groups.items():
        if plate is None:
            sub = graph
        else:
            sub = graphviz.Digraph(name="cluster_" + plate)
            sub.attr(label=plate.split(_CLONE)[0], labeljust="r", labelloc="b")
        for rv in rvs:
            sub.node(rv, **_node_attributes(rv, node_data[rv]))
        plate_graphs[plate] = sub

    # graphviz copies a subgraph's body when it is attached, so a cluster is attached to its
    # parent only once all of its own child clusters are in it.
    pending = list(plate_data)
    while pending:
        attached = False
        for plate in list(pending):
            if any(plate_data[other]["parent"] == plate for other in pending):
                continue
            plate_graphs[plate_data[plate]["parent"]].subgraph(plate_graphs[plate])
            pending.remove(plate)
            attached = True
        if not attached:
            raise ValueError(
                f"render_graph: plate_data has a cycle among plates {pending}; each plate's "
                "'parent' must be an enclosing plate or None"
            )

    for src, dst in graph_specification["edge_list"]:
        graph.edge(src, dst)

    if render_distributions:
        lines = []
        for rv, data in node_data.items():
            if data["distribution"] is not None:
                lines.append(f"{rv} ~ {data['distribution']}\\l")
            else:
                lines.append(f"{rv} : {data['constraint']}\\l")
        graph.node("distribution_description_node", label="".join(lines), shape="plaintext")
    return graph


def _deep_merge(things: list):
    """Merge the graph specifications of several runs: dicts key by key (the first run's
    keys), flags that disagree become None, anything else is the first run's."""
    first = things[0]
    if isinstance(first, dict):
        return {key: _deep_merge([thing[key] for thing in things]) for key in first}
    if isinstance(first, bool):
        return first if all(thing == first for thing in things) else None
    return first


def render_model(
    model: Callable,
    model_args: Union[tuple, List[tuple], None] = None,
    model_kwargs: Union[dict, List[dict], None] = None,
    filename: Optional[str] = None,
    render_distributions: bool = False,
    render_params: bool = False,
    render_deterministic: bool = False,
) -> "graphviz.Digraph":
    """Draw ``model`` as a graphviz graph: sites as nodes, dependencies as edges, plates as
    clusters; observed sites are filled. Needs the optional ``graphviz`` package
    (``pip install pyrolite[render]``).

    ``model_args``/``model_kwargs`` may be lists, one entry per run (e.g. a semi-supervised
    model with and without labels): the graphs are merged, a site observed in some runs
    only is half filled. ``filename`` also saves the drawing, its format taken from the
    suffix (needs Graphviz's ``dot`` program). ``render_distributions`` adds a legend of
    the sites' distributions, ``render_params`` the params and their edges, and
    ``render_deterministic`` the edges out of ``deterministic`` sites.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> def model(data):
    ...     m = pyrolite.sample("m", dist.Normal(0.0, 1.0))
    ...     with pyrolite.plate("N", len(data)):
    ...         pyrolite.sample("obs", dist.Normal(m, 1.0), obs=data)
    >>> graph = render_model(model, (torch.zeros(3),))  # doctest: +SKIP
    >>> print(graph.source.expandtabs(2))  # doctest: +SKIP
    digraph {
      m [label=m fillcolor=white shape=ellipse style=filled]
      subgraph cluster_N {
        label=N labeljust=r labelloc=b
        obs [label=obs fillcolor=gray shape=ellipse style=filled]
      }
      m -> obs
    }
    """
    _import_graphviz()
    runs_args = model_args if isinstance(model_args, list) else None
    runs_kwargs = model_kwargs if isinstance(model_kwargs, list) else None
    if runs_args is None and runs_kwargs is None:
        runs_args, runs_kwargs = [model_args], [model_kwargs]
    elif runs_args is None:
        runs_args = [model_args] * len(runs_kwargs)
    elif runs_kwargs is None:
        runs_kwargs = [model_kwargs] * len(runs_args)
    if len(runs_args) != len(runs_kwargs):
        raise AssertionError(
            f"render_model: model_args has {len(runs_args)} runs but model_kwargs has "
            f"{len(runs_kwargs)}; pass lists of the same length (one entry per run)"
        )
    for args, kwargs in zip(runs_args, runs_kwargs):
        if not (args is None or isinstance(args, tuple)) or not (
            kwargs is None or isinstance(kwargs, dict)
        ):
            raise AssertionError(
                "render_model: each run's model_args must be a tuple and model_kwargs a dict, "
                f"got {type(args).__name__} and {type(kwargs).__name__}; e.g. "
                "model_args=[(data,), (data,)]"
            )

    specs = [
        generate_graph_specification(
            get_model_relations(model, args, kwargs, include_deterministic=render_deterministic),
            render_params=render_params,
        )
        for args, kwargs in zip(runs_args, runs_kwargs)
    ]
    graph = render_graph(_deep_merge(specs), render_distributions=render_distributions)
    if filename is not None:
        path = Path(filename)
        # graphviz writes the DOT source next to the drawing and raises ExecutableNotFound
        # (a RuntimeError) naming `dot` when Graphviz is not installed.
        graph.render(path.with_suffix(""), format=path.suffix[1:], cleanup=True)
    return graph


__all__ = ["get_dependencies", "render_model"]
