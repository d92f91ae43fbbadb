"""``Trace``: the record of one execution, and the single owner of log-prob bookkeeping.

Sites are kept in execution order. Log-probs are computed once per site and cached
on the site (``log_prob``, ``log_prob_sum``, ``score_parts``); plate scale and mask
are applied exactly once, here.
"""

from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from ..distributions.util import is_identically_one, scale_and_mask

SiteFilter = Callable[[str, dict], bool]


def _all_sites(name, site):
    return True


def _site_log_prob(name: str, site: dict) -> torch.Tensor:
    """``fn.log_prob(value)`` with errors that name the site."""
    infer = site["infer"]
    if infer.get("_enumerate_support") and not site["args"]:
        # An enumerated site whose value is its whole support: the distribution may lay
        # out the log-probs of its support directly (no gather over the broadcast).
        fast = getattr(site["fn"], "support_log_prob", None)
        if fast is not None:
            dim, value = infer["_enumerate_dim"], site["value"]
            log_prob = fast(dim)
            if log_prob.shape[log_prob.dim() + dim] == value.shape[value.dim() + dim]:
                return log_prob
    try:
        return site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    except ValueError as e:
        value = site["value"]
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            f"Error computing log_prob at site '{name}' "
            f"({type(site['fn']).__name__}, value shape {shape}): {e}\n"
            "If the value is an observation, check it lies in the distribution's support "
            "(fix the data or choose a distribution whose support contains it)."
        ) from e


def _cache_log_prob(name: str, site: dict) -> None:
    """Compute a site's log-prob once; scale and mask are applied here and nowhere else."""
    raw = site.get("unscaled_log_prob")
    if raw is None:
        raw = _site_log_prob(name, site)
    site["unscaled_log_prob"] = raw
    site["log_prob"] = scale_and_mask(raw, site["scale"], site["mask"])
    site["log_prob_sum"] = _total(site["log_prob"])


def _total(log_prob: torch.Tensor) -> torch.Tensor:
    # A 0-dim log-prob is its own sum: skipping .sum() keeps a no-op node out of backward.
    return log_prob if log_prob.dim() == 0 else log_prob.sum()


def _fast_log_prob_sum(
    site: dict, keep: Tuple[int, ...], validated: bool = False
) -> Optional[torch.Tensor]:
    """The site's scaled log-prob summed over all dims but ``keep`` by the distribution's
    ``_log_prob_sum`` (no per-element tensor), or None where that does not apply: a mask,
    a tensor scale, validation on (unless ``validated``: the value was checked by a
    ``log_prob`` already), extra arguments, or no such method."""
    fn, scale = site["fn"], site["scale"]
    fast = getattr(fn, "_log_prob_sum", None)
    if (
        fast is None
        or (not validated and getattr(fn, "_validate_args", True))
        or site["mask"] is not None
        or not isinstance(scale, (int, float))
        or site["args"]
        or site["kwargs"]
    ):
        return None
    total = fast(site["value"], keep) if keep else fast(site["value"])
    if total is None or scale == 1:
        return total
    return total * scale


def sum_all_but(term, keep: Tuple[int, ...]) -> torch.Tensor:
    """``term`` summed over every dim but ``keep`` (negative, ascending), laid out as the
    kept dims' sizes (a term lacking a kept dim gets size 1 there)."""
    if not isinstance(term, torch.Tensor):
        term = torch.as_tensor(term)
    width = -keep[0] if keep else 0
    if term.dim() < width:
        term = term.reshape((1,) * (width - term.dim()) + tuple(term.shape))
    summed = [d for d in range(-term.dim(), 0) if d not in keep]
    return term.sum(summed) if summed else term


def _site_score_parts(name: str, site: dict):
    fn = site["fn"]
    if hasattr(fn, "score_parts"):
        try:
            return fn.score_parts(site["value"], *site["args"], **site["kwargs"])
        except ValueError:
            _site_log_prob(name, site)  # re-raise with the site named
            raise
    from ..distributions.score_parts import ScoreParts

    log_prob = _site_log_prob(name, site)
    if getattr(fn, "has_rsample", False):
        return ScoreParts(log_prob, 0, log_prob)
    return ScoreParts(log_prob, log_prob, 0)


class Trace:
    """Ordered sites of one run of a model or guide.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    >>> tr = poutine.trace(model).get_trace()
    >>> round(tr.log_prob_sum().item(), 4)
    -0.9189
    """

    def __init__(self, graph_type: str = "flat"):
        if graph_type not in ("flat", "dense"):
            raise ValueError(f"graph_type must be 'flat' or 'dense', got {graph_type!r}")
        self.graph_type = graph_type
        self.nodes: Dict[str, dict] = {}
        self._succ: Dict[str, set] = {}
        self._pred: Dict[str, set] = {}
        # Sites added with ``dependent=True``, in program order, and how many of them have
        # their program-order edges recorded: the edges are made when first asked for, so a
        # dense trace whose graph nobody reads (most steps of an estimator whose structure
        # work is cached) costs no more than a flat one.
        self._program_order: List[str] = []
        self._linked = 0

    # --- structure -------------------------------------------------------------

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, site_name: str, **site) -> None:
        self.add_site(site_name, site)

    def add_site(self, site_name: str, site: dict, dependent: bool = False) -> None:
        """Add ``site`` (a message dict, stored as is) under ``site_name``.

        ``dependent``: the site depends on every earlier dependent site (an edge from each,
        except from sites in another iteration of a sequential plate), Pyro's conservative
        notion of dependency by program order; ``trace(graph_type="dense")`` adds every
        sample site so, plate-subsample sites excepted.
        """
        old = self.nodes.get(site_name)
        if old is not None:
            if old["type"] != site["type"]:
                raise RuntimeError(
                    f"Site '{site_name}' is already in the trace as a {old['type']} site; it "
                    f"cannot also be a {site['type']} site. Rename one of them."
                )
            if site["type"] != "param":
                raise RuntimeError(
                    f"Multiple {site['type']} sites named '{site_name}' in one trace. Site names "
                    "must be unique: give each call its own name, e.g. f'{site_name}_{{i}}' in a "
                    "loop, or use a plate for independent copies."
                )
        self.nodes[site_name] = site
        if dependent:
            self._program_order.append(site_name)

    def remove_node(self, name: str) -> None:
        self._link()
        self.nodes.pop(name)
        if name in self._program_order:
            self._program_order.remove(name)
            self._linked = len(self._program_order)
        for other in self._succ.pop(name, ()):
            self._pred.get(other, set()).discard(name)
        for other in self._pred.pop(name, ()):
            self._succ.get(other, set()).discard(name)

    def add_edge(self, src: str, dst: str) -> None:
        """Record that ``dst`` depends on ``src``; a name not in the trace is added as a
        bare node (``{"name": ..., "type": "node"}``)."""
        for name in (src, dst):
            if name not in self.nodes:
                self.nodes[name] = {"name": name, "type": "node"}
        self._succ.setdefault(src, set()).add(dst)
        self._pred.setdefault(dst, set()).add(src)

    def _link(self) -> None:
        """Record the program-order edges of the dependent sites not linked yet."""
        order = self._program_order
        for j in range(self._linked, len(order)):
            dst = order[j]
            site = self.nodes[dst]
            for src in order[:j]:
                if not _sequentially_independent(self.nodes[src], site):
                    self.add_edge(src, dst)
        self._linked = len(order)

    @property
    def edges(self) -> List[Tuple[str, str]]:
        self._link()
        return [(src, dst) for src, dsts in self._succ.items() for dst in dsts]

    def successors(self, name: str) -> set:
        self._link()
        return self._succ.get(name, set())

    def predecessors(self, name: str) -> set:
        self._link()
        return self._pred.get(name, set())

    def topological_sort(self, reverse: bool = False) -> List[str]:
        """Site names with every site after its predecessors (execution order breaks ties)."""
        self._link()
        order, placed = [], set()
        pending = list(self.nodes)
        while pending:
            # The earliest site whose predecessors are all placed; edges normally point
            # forward in execution order, so this is usually the first pending site.
            ready = next((n for n in pending if self._pred.get(n, set()) <= placed), None)
            if ready is None:
                raise ValueError("Trace graph has a cycle")
            pending.remove(ready)
            order.append(ready)
            placed.add(ready)
        return order[::-1] if reverse else order

    def copy(self) -> "Trace":
        """A new trace whose site dicts are shallow copies (tensors shared), edges kept."""
        new = Trace(self.graph_type)
        new.nodes = {name: site.copy() for name, site in self.nodes.items()}
        new._succ = {k: set(v) for k, v in self._succ.items()}
        new._pred = {k: set(v) for k, v in self._pred.items()}
        new._program_order = list(self._program_order)
        new._linked = self._linked
        return new

    def detach_(self) -> "Trace":
        """Detach every tensor value and cached log-prob in place."""
        for site in self.nodes.values():
            for key in ("value", "log_prob", "log_prob_sum", "unscaled_log_prob"):
                if isinstance(site.get(key), torch.Tensor):
                    site[key] = site[key].detach()
        return self

    # --- node views ------------------------------------------------------------

    @property
    def stochastic_nodes(self) -> List[str]:
        return [n for n, s in self.nodes.items() if s["type"] == "sample" and not s["is_observed"]]

    @property
    def reparameterized_nodes(self) -> List[str]:
        return [
            n
            for n, s in self.nodes.items()
            if s["type"] == "sample"
            and not s["is_observed"]
            and getattr(s["fn"], "has_rsample", False)
        ]

    @property
    def nonreparam_stochastic_nodes(self) -> List[str]:
        reparam = set(self.reparameterized_nodes)
        return [n for n in self.stochastic_nodes if n not in reparam]

    @property
    def observation_nodes(self) -> List[str]:
        return [n for n, s in self.nodes.items() if s["type"] == "sample" and s["is_observed"]]

    @property
    def param_nodes(self) -> List[str]:
        return [n for n, s in self.nodes.items() if s["type"] == "param"]

    def iter_stochastic_nodes(self) -> Iterator[Tuple[str, dict]]:
        for name, site in self.nodes.items():
            if site["type"] == "sample" and not site["is_observed"]:
                yield name, site

    # --- log-probs ---------------------------------------------------------------

    def compute_log_prob(self, site_filter: SiteFilter = _all_sites) -> None:
        """Cache ``log_prob`` (scaled, masked) and ``unscaled_log_prob`` on sample sites."""
        for name, site in self.nodes.items():
            if site["type"] != "sample" or "log_prob" in site or not site_filter(name, site):
                continue
            _cache_log_prob(name, site)

    def compute_log_prob_sums(self, site_filter: SiteFilter = _all_sites) -> None:
        """Cache ``log_prob_sum`` on sample sites, and ``log_prob`` only where it is needed.

        A site whose distribution can sum its log-density without the per-element tensor
        (``_log_prob_sum``: Normal with one scale, also under ``to_event``) and has no mask
        and a number for a scale gets only ``log_prob_sum``; every other site is cached in
        full. For estimators that read nothing but the sums; ``compute_log_prob`` later
        fills in ``log_prob`` if asked.
        """
        for name, site in self.nodes.items():
            if site["type"] != "sample" or "log_prob_sum" in site or not site_filter(name, site):
                continue
            total = _fast_log_prob_sum(site, ())
            if total is not None:
                site["log_prob_sum"] = total
                continue
            _cache_log_prob(name, site)
            # Validating, the log-prob was computed (and its value checked) in full; the sum
            # is still the fast one, so a validated step sums exactly as the others do.
            total = _fast_log_prob_sum(site, (), validated=True)
            if total is not None:
                site["log_prob_sum"] = total

    def unscaled_log_prob(self, name: str) -> torch.Tensor:
        """Site ``name``'s log-prob without scale or mask, computed once and cached (for
        estimators that apply scale and mask themselves: ``TraceEnum_ELBO``'s factors)."""
        site = self.nodes[name]
        raw = site.get("unscaled_log_prob")
        if raw is None:
            raw = site["unscaled_log_prob"] = _site_log_prob(name, site)
        return raw

    def log_prob_sum_keeping(self, name: str, keep: Tuple[int, ...]) -> torch.Tensor:
        """Site ``name``'s log-prob summed over every dim but ``keep`` (negative dims,
        ascending), laid out as the kept dims' sizes; summed without the per-element
        tensor where the distribution can (as :meth:`compute_log_prob_sums`)."""
        site = self.nodes[name]
        if "log_prob" not in site:
            total = _fast_log_prob_sum(site, keep)
            if total is not None:
                return total
            _cache_log_prob(name, site)
        return sum_all_but(site["log_prob"], keep)

    def compute_score_parts(self, site_filter: SiteFilter = _all_sites) -> None:
        """Cache ``score_parts`` (log_prob, score_function, entropy_term), scaled and masked."""
        for name, site in self.nodes.items():
            if site["type"] != "sample" or "score_parts" in site or not site_filter(name, site):
                continue
            parts = _site_score_parts(name, site)
            site["unscaled_log_prob"] = parts.log_prob
            if not (site["mask"] is None and is_identically_one(site["scale"])):
                parts = parts.scale_and_mask(site["scale"], site["mask"])
            site["score_parts"] = parts
            site["log_prob"] = parts.log_prob
            site["log_prob_sum"] = _total(parts.log_prob)

    def log_prob_sum(self, site_filter: SiteFilter = _all_sites):
        """Sum of the scaled, masked log-probs of all sample sites passing ``site_filter``."""
        total = 0.0
        for name, site in self.nodes.items():
            if site["type"] != "sample" or not site_filter(name, site):
                continue
            if "log_prob_sum" not in site:
                _cache_log_prob(name, site)
            total = total + site["log_prob_sum"]
        return total

    # --- display -----------------------------------------------------------------

    def format_shapes(self, title: str = "Trace Shapes:", last_site: Optional[str] = None) -> str:
        """A table of each site's batch and event shapes (``batch | event``).

        >>> import torch, pyrolite, pyrolite.distributions as dist
        >>> from pyrolite import poutine
        >>> def model():
        ...     with pyrolite.plate("data", 3):
        ...         pyrolite.sample("x", dist.Normal(0.0, 1.0))
        >>> print(poutine.trace(model).get_trace().format_shapes())
        Trace Shapes:
         Param Sites:
        Sample Sites:
               x dist 3 |
                value 3 |
        """
        rows = [(title, None, None), (" Param Sites:", None, None)]
        for name, site in self.nodes.items():
            if site["type"] == "param":
                rows.append((name, tuple(site["value"].shape), None))
        rows.append(("Sample Sites:", None, None))
        for name, site in self.nodes.items():
            if site["type"] != "sample" or site["infer"].get("_subsample"):
                continue
            fn = site["fn"]
            event = tuple(getattr(fn, "event_shape", ()))
            rows.append((f"{name} dist", tuple(getattr(fn, "batch_shape", ())), event))
            value = site["value"]
            if isinstance(value, torch.Tensor):
                cut = value.dim() - len(event)
                rows.append(("value", tuple(value.shape[:cut]), tuple(value.shape[cut:])))
            if name == last_site:
                break
        width = max(len(label) for label, _, _ in rows)
        bwidth = max((len(_shape_str(b)) for _, b, _ in rows if b is not None), default=0)
        lines = []
        for label, batch, event in rows:
            if batch is None:
                lines.append(label)
                continue
            line = label.rjust(width) + " " + _shape_str(batch).rjust(bwidth)
            if event is not None:
                line += " | " + _shape_str(event)
            lines.append(line.rstrip())
        return "\n".join(lines)


def _sequentially_independent(site: dict, other: dict) -> bool:
    """True when the two sites lie in different iterations of one sequential plate."""
    for a, b in zip(site.get("cond_indep_stack", ()), other.get("cond_indep_stack", ())):
        if a.name == b.name and a.counter != b.counter:
            return True
    return False


def _shape_str(shape) -> str:
    return " ".join(str(s) for s in shape)
