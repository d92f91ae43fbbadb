"""Effect-based autoguides: the guide runs the model itself and replaces each latent
site's prior by a posterior built from that prior (``AutoMessenger`` and its Normal,
hierarchical-Normal and regressive families).

Params are created the first time a site is seen, under the guide's own module name
(``""`` unless nested), so they are stored as ``"locs.z"``, ``"scales.z"``, ...
"""

from typing import Callable, Dict, Optional, Tuple, Union

import torch
from torch.distributions import biject_to

from ...distributions import Delta, Normal, TransformedDistribution, constraints
from ...distributions.transforms import AffineTransform
from ...nn.module import PyroModule, PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.messenger import Messenger
from ...poutine.trace_messenger import TraceMessenger
from ...poutine.trace_struct import Trace
from .guides import _check_init_scale, deep_setattr, periodic_repeat
from .initialization import _broadcast_to_plates, init_to_feasible, init_to_mean

Posterior = Union[torch.distributions.Distribution, torch.Tensor]


def _is_observed_sample(msg: dict) -> bool:
    return msg["type"] == "sample" and msg["is_observed"]


def _is_subsample(site: dict) -> bool:
    return bool(site["infer"].get("_subsample"))


class _PosteriorEffect(Messenger):
    """Swap each latent site's prior for ``guide.get_posterior(name, prior)``.

    It sits inside the guide's tracer, so the tracer records the posterior (the prior is
    kept in ``infer["prior"]``); a tensor posterior is the site's value, a point mass.
    """

    def __init__(self, guide: "AutoMessenger"):
        self.guide = guide

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or _is_subsample(msg):
            return
        prior = _broadcast_to_plates(msg)
        msg["infer"]["prior"] = prior
        self.guide._set("_current_site", msg)
        posterior = self.guide.get_posterior(msg["name"], prior)
        if isinstance(posterior, torch.Tensor):
            msg["value"] = posterior
            msg["fn"] = Delta(posterior, event_dim=prior.event_dim)
        else:
            msg["fn"] = posterior


class AutoMessenger(PyroModule):
    """Base of the effect-based autoguides: subclasses implement ``get_posterior``.

    Calling the guide runs the model once; at each latent site ``get_posterior(name,
    prior)`` returns a distribution (or a value) given the upstream posterior draws, read
    with ``upstream_value``. Outer handlers (an ELBO's tracer) see the guide's params, the
    model's plates and one sample site per latent site; observed sites stay inside.

    :param model: the model.
    :param amortized_plates: names of plates over which params are shared (one value for
        the whole plate, e.g. for subsampled data).
    """

    def __init__(self, model: Callable, *, amortized_plates: Tuple[str, ...] = ()):
        super().__init__()
        if not callable(model):
            raise TypeError(f"{type(self).__name__} expects a model callable, got {model!r}")
        self._model = (model,)  # a tuple, so an nn.Module model is not made a submodule
        self.amortized_plates = tuple(amortized_plates)
        self._set("_trace", None)
        self._set("_current_site", None)

    @property
    def model(self) -> Callable:
        return self._model[0]

    def _set(self, name: str, value) -> None:
        self.__dict__[name] = value  # per-call state, not a module attribute

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """Draw from the guide (running the model); returns {site: value} of every
        latent, deterministic and observed sample site."""
        tracer = TraceMessenger()
        self._set("_trace", tracer.trace)
        with BlockMessenger(hide_fn=_is_observed_sample), tracer, _PosteriorEffect(self):
            self.model(*args, **kwargs)
        self._set("_trace", tracer.trace)
        self._set("_current_site", None)
        return {
            name: site["value"]
            for name, site in tracer.trace.nodes.items()
            if site["type"] == "sample" and not _is_subsample(site)
        }

    def call(self, *args, **kwargs) -> tuple:
        """The guide's draws as a tuple (in site order), for ``torch.jit`` tracing."""
        return tuple(self(*args, **kwargs).values())

    def get_posterior(self, name: str, prior) -> Posterior:
        """The posterior at site ``name`` given its ``prior`` (conditioned on upstream
        draws): a distribution, or a tensor value."""
        raise NotImplementedError

    def upstream_value(self, name: str) -> Optional[torch.Tensor]:
        """For ``get_posterior``: the value of an upstream sample or deterministic site."""
        site = self._trace.nodes.get(name) if self._trace is not None else None
        return None if site is None else site["value"]

    def get_traces(self) -> Tuple[Trace, Trace]:
        """(model trace, guide trace) of the latest call: one call makes both, since the
        guide interleaves with the model. The model trace has the priors, the guide
        trace the posteriors and no observed sites."""
        if self._trace is None:
            raise RuntimeError(f"{type(self).__name__}.get_traces: call the guide first")
        model_trace = self._trace.copy()
        guide_trace = self._trace.copy()
        for name, site in list(self._trace.nodes.items()):
            if site["type"] != "sample" or _is_subsample(site):
                continue
            if site["is_observed"]:
                guide_trace.remove_node(name)
            elif "prior" in site["infer"]:
                model_trace.nodes[name] = dict(site, fn=site["infer"]["prior"])
        return model_trace, guide_trace

    def _adjust_plates(self, value: torch.Tensor, event_dim: int) -> torch.Tensor:
        """An init value at the full size of subsampled plates, and at size one in the
        amortized plates (whose dims are then dropped where they lead)."""
        site = self._current_site
        amortized = False
        for frame in site["cond_indep_stack"]:
            if frame.dim is None:
                continue
            dim = frame.dim - event_dim
            if value.dim() < -dim:
                continue
            if frame.name in self.amortized_plates:
                value = value.mean(dim, keepdim=True)
                amortized = True
            elif frame.full_size is not None and frame.full_size != value.size(dim):
                value = periodic_repeat(value, frame.full_size, dim)
        while amortized and value.dim() > event_dim and value.size(0) == 1:
            value = value[0]
        return value.contiguous()

    def _declare(self, kind: str, name: str, param: PyroParam) -> None:
        deep_setattr(self, f"{kind}.{name}", param)

    def _read(self, kind: str, name: str) -> Optional[torch.Tensor]:
        module = self._modules.get(kind)
        for part in name.split("."):
            if module is None:
                return None
            if part in module._pyro_params:
                return getattr(module, part)
            module = module._modules.get(part)
        return None


def _default_init_loc_fn():
    return init_to_mean(fallback=init_to_feasible)


def _unconstrained_init(guide: AutoMessenger, name: str, prior, init_loc_fn):
    transform = biject_to(prior.support)
    event_dim = transform.domain.event_dim
    with torch.no_grad():
        constrained = init_loc_fn({"name": name, "fn": prior})
        unconstrained = transform.inv(torch.as_tensor(constrained).detach())
    return transform, event_dim, unconstrained


class AutoNormalMessenger(AutoMessenger):
    """Mean-field Normal in the unconstrained space of each site (as ``AutoNormal``),
    overridable per site by subclassing ``get_posterior``.

    Params: ``locs.{site}`` (real) and ``scales.{site}`` (positive), created when the site
    is first seen, at ``biject_to(support).inv(init_loc_fn(site))`` and ``init_scale``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("s", dist.LogNormal(0.0, 1.0))
    >>> guide = AutoNormalMessenger(model)
    >>> _ = guide()
    >>> sorted(pyrolite.get_param_store().keys())
    ['locs.s', 'scales.s']
    >>> round(float(guide.median()["s"]), 4)  # init_to_mean: exp(1/2)
    1.6487
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = _default_init_loc_fn(),
        init_scale: float = 0.1,
        amortized_plates: Tuple[str, ...] = (),
    ):
        super().__init__(model, amortized_plates=amortized_plates)
        self.init_loc_fn = init_loc_fn
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)

    def get_posterior(self, name: str, prior) -> Posterior:
        if self._computing_median:
            return self._get_posterior_median(name, prior)
        transform = biject_to(prior.support)
        loc, scale = self._get_params(name, prior)
        event_dim = transform.domain.event_dim
        return TransformedDistribution(
            Normal(loc, scale).to_event(event_dim), transform.with_cache()
        )

    _computing_median = False

    def _get_params(self, name: str, prior) -> Tuple[torch.Tensor, torch.Tensor]:
        loc = self._read("locs", name)
        if loc is not None:
            return loc, self._read("scales", name)
        _, event_dim, init_loc = _unconstrained_init(self, name, prior, self.init_loc_fn)
        init_loc = self._adjust_plates(init_loc, event_dim)
        init_scale = torch.full_like(init_loc, self._init_scale)
        self._declare("locs", name, PyroParam(init_loc, constraints.real, event_dim))
        self._declare("scales", name, PyroParam(init_scale, constraints.positive, event_dim))
        return self._read("locs", name), self._read("scales", name)

    def _get_posterior_median(self, name: str, prior) -> torch.Tensor:
        transform = biject_to(prior.support)
        loc, _ = self._get_params(name, prior)
        return transform(loc)

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """{site: posterior median}, each site's median given its upstream medians
        (observed sites keep their data)."""
        self._set("_computing_median", True)
        try:
            with torch.no_grad(), BlockMessenger():
                return {k: v.detach() for k, v in self(*args, **kwargs).items()}
        finally:
            self.__dict__.pop("_computing_median", None)


class AutoHierarchicalNormalMessenger(AutoNormalMessenger):
    """``AutoNormalMessenger`` whose loc follows the prior mean given upstream draws:
    ``loc_total = loc + transform.inv(prior.mean) * weight`` (unconstrained space).

    Params: ``locs.{site}``, ``scales.{site}`` and, for hierarchical sites,
    ``weights.{site}`` (positive, init ``init_weight``); ``hierarchical_sites=None``
    treats every site as hierarchical. The prior needs a ``mean``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     a = pyrolite.sample("a", dist.Normal(1.0, 1.0))
    ...     pyrolite.sample("b", dist.Normal(a, 1.0))
    >>> guide = AutoHierarchicalNormalMessenger(model)
    >>> sorted(guide.median())  # b's median is its prior mean at a's median
    ['a', 'b']
    >>> [round(float(v), 4) for v in guide.median().values()]
    [1.0, 1.0]
    >>> sorted(pyrolite.get_param_store().keys())
    ['locs.a', 'locs.b', 'scales.a', 'scales.b', 'weights.a', 'weights.b']
    """

    weight_type = "element-wise"

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = _default_init_loc_fn(),
        init_scale: float = 0.1,
        amortized_plates: Tuple[str, ...] = (),
        init_weight: float = 1.0,
        hierarchical_sites: Optional[list] = None,
    ):
        super().__init__(
            model, init_loc_fn=init_loc_fn, init_scale=init_scale, amortized_plates=amortized_plates
        )
        self._init_weight = float(init_weight)
        self._hierarchical_sites = hierarchical_sites

    def _is_hierarchical(self, name: str) -> bool:
        return self._hierarchical_sites is None or name in self._hierarchical_sites

    def _total_loc(self, name: str, prior) -> Tuple[torch.Tensor, torch.Tensor]:
        transform = biject_to(prior.support)
        loc, scale, weight = self._get_params(name, prior)
        if weight is not None:
            loc = loc + transform.inv(prior.mean) * weight
        return loc, scale

    def get_posterior(self, name: str, prior) -> Posterior:
        if self._computing_median:
            return self._get_posterior_median(name, prior)
        transform = biject_to(prior.support)
        loc, scale = self._total_loc(name, prior)
        event_dim = transform.domain.event_dim
        return TransformedDistribution(
            Normal(loc, scale).to_event(event_dim), transform.with_cache()
        )

    def _get_params(self, name: str, prior):
        loc = self._read("locs", name)
        if loc is not None:
            return loc, self._read("scales", name), self._read("weights", name)
        transform, event_dim, init_loc = _unconstrained_init(self, name, prior, self.init_loc_fn)
        hierarchical = self._is_hierarchical(name)
        if hierarchical:
            with torch.no_grad():
                init_loc = init_loc - transform.inv(prior.mean) * self._init_weight
        init_loc = self._adjust_plates(init_loc, event_dim)
        init_scale = torch.full_like(init_loc, self._init_scale)
        self._declare("locs", name, PyroParam(init_loc, constraints.real, event_dim))
        self._declare("scales", name, PyroParam(init_scale, constraints.positive, event_dim))
        if hierarchical:
            init_weight = torch.full_like(init_loc, self._init_weight)
            self._declare("weights", name, PyroParam(init_weight, constraints.positive, event_dim))
        return self._read("locs", name), self._read("scales", name), self._read("weights", name)

    def _get_posterior_median(self, name: str, prior) -> torch.Tensor:
        loc, _ = self._total_loc(name, prior)
        return biject_to(prior.support)(loc)


class AutoRegressiveMessenger(AutoMessenger):
    """Each site's posterior is its prior (given upstream draws) moved by a learned affine
    map in the unconstrained space: ``transform(loc + scale * transform.inv(x))``.

    Params: ``locs.{site}`` (real) and ``scales.{site}`` (positive, init ``init_scale``);
    ``loc`` starts where the prior's init point maps to itself.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(2.0, 1.0))
    >>> guide = AutoRegressiveMessenger(model)
    >>> _ = guide()
    >>> round(float(pyrolite.param("locs.z")), 4)  # 2 * (1 - 0.1)
    1.8
    """

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = _default_init_loc_fn(),
        init_scale: float = 0.1,
        amortized_plates: Tuple[str, ...] = (),
    ):
        super().__init__(model, amortized_plates=amortized_plates)
        self.init_loc_fn = init_loc_fn
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)

    def get_posterior(self, name: str, prior) -> Posterior:
        transform = biject_to(prior.support)
        event_dim = transform.domain.event_dim
        loc, scale = self._get_params(name, prior)
        affine = AffineTransform(loc, scale, event_dim=event_dim, cache_size=1)
        return TransformedDistribution(
            prior, [transform.inv.with_cache(), affine, transform.with_cache()]
        )

    def _get_params(self, name: str, prior) -> Tuple[torch.Tensor, torch.Tensor]:
        loc = self._read("locs", name)
        if loc is not None:
            return loc, self._read("scales", name)
        _, event_dim, init_u = _unconstrained_init(self, name, prior, self.init_loc_fn)
        # loc + scale * u maps the init point u to itself at scale == init_scale.
        init_loc = self._adjust_plates(init_u * (1 - self._init_scale), event_dim)
        init_scale = torch.full_like(init_loc, self._init_scale)
        self._declare("locs", name, PyroParam(init_loc, constraints.real, event_dim))
        self._declare("scales", name, PyroParam(init_scale, constraints.positive, event_dim))
        return self._read("locs", name), self._read("scales", name)
