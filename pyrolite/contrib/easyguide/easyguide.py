"""``EasyGuide``: guides written by hand from a few building blocks, on top of the
autoguides' model discovery (``pyro.contrib.easyguide``).

An ``EasyGuide`` is a ``PyroModule`` named after its class; on its first call it runs the
model once at ``init`` values, hidden from outer handlers (the prototype trace, as an
``AutoGuide`` does). Its ``guide`` then uses ``self.plate``, ``self.map_estimate`` and
``self.group(...)``, whose :class:`Group` draws one auxiliary site for many model sites.
"""

import re
import weakref
from contextlib import ExitStack
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.distributions import biject_to

from ... import primitives as pyro
from ...distributions import Delta, constraints
from ...infer.autoguide.guides import (
    LatentSite,
    deep_getattr,
    deep_setattr,
    find_device,
    is_latent,
    periodic_repeat,
    strip_independent,
)
from ...infer.autoguide.initialization import InitMessenger
from ...nn.module import PyroModule, PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.runtime import get_plates
from ...poutine.trace_messenger import TraceMessenger

__all__ = ["EasyGuide", "Group", "easy_guide"]


class EasyGuide(PyroModule):
    """Base class of hand-written guides that may use, inside :meth:`guide`:

    * ``with self.plate(name, ...):`` instead of ``pyro.plate`` (one plate object per call,
      so a subsample is drawn once and shared by every statement);
    * ``self.map_estimate(name)``: a ``Delta`` at a learned value for one model site;
    * ``group = self.group(match)``: several model sites guided jointly (:class:`Group`).

    Override :meth:`init` to choose the prototype values (default: a prior draw).

    :param model: a Pyro model.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.LogNormal(torch.zeros(2), 1.0).to_event(1))
    >>> class Guide(EasyGuide):
    ...     def guide(self):
    ...         group = self.group()
    ...         loc = pyrolite.param("loc", torch.zeros(group.event_shape))
    ...         return group.sample("joint", dist.Normal(loc, 1.0).to_event(1))
    >>> pyrolite.clear_param_store()
    >>> guide = Guide(model)
    >>> joint, values = guide()
    >>> joint.shape, sorted(values), values["b"].shape
    (torch.Size([3]), ['a', 'b'], torch.Size([2]))
    """

    def __init__(self, model: Callable) -> None:
        super().__init__(name=type(self).__name__)
        self._model = (model,)  # a tuple, so an nn.Module model is not made a submodule
        self.prototype_trace = None
        self.frames: Dict[str, object] = {}
        self.groups: Dict[str, object] = {}  # match -> Group
        self.plates: Dict[str, object] = {}

    @property
    def model(self) -> Callable:
        return self._model[0]

    def _setup_prototype(self, *args, **kwargs) -> None:
        """Run the model once at :meth:`init` values, hidden from outer handlers."""
        tracer = TraceMessenger()
        init = InitMessenger(self.init, device=find_device(args, kwargs))
        with torch.no_grad(), BlockMessenger(), tracer:
            with BlockMessenger(hide_fn=lambda msg: not is_latent(msg)), init:
                self.model(*args, **kwargs)
        self.prototype_trace = tracer.trace
        self.frames = {}
        for site in self.prototype_trace.nodes.values():
            for frame in site["cond_indep_stack"]:
                if frame.dim is not None:
                    self.frames[frame.name] = frame
        self.__dict__["_latent_sites"] = {}

    def guide(self, *args, **kwargs):
        """The guide; subclasses (or :func:`easy_guide`) define it."""
        raise NotImplementedError(
            f"{type(self).__name__} must define guide(self, *args, **kwargs); subclass "
            "EasyGuide and override guide, or decorate a function with @easy_guide(model)"
        )

    def init(self, site: dict) -> torch.Tensor:
        """The prototype value of a model site (constrained); default: ``site["fn"]()``."""
        return site["fn"]()

    def forward(self, *args, **kwargs):
        """Run :meth:`guide` (call the module, ``guide(*args)``, rather than this)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        try:
            return self.guide(*args, **kwargs)
        finally:
            self.plates.clear()

    def plate(
        self,
        name: str,
        size: Optional[int] = None,
        subsample_size: Optional[int] = None,
        subsample: Optional[torch.Tensor] = None,
        *args,
        **kwargs,
    ):
        """``pyro.plate`` made once per guide call (later calls with the same name return
        it). Arguments not given come from the model's plate of that name."""
        if name not in self.plates:
            frame = self.frames.get(name)
            if frame is not None and size is None and subsample is None:
                size = frame.full_size if frame.full_size is not None else frame.size
                if subsample_size is None:
                    subsample_size = frame.size
            if frame is not None and not args:
                kwargs.setdefault("dim", frame.dim)
            self.plates[name] = pyro.plate(name, size, subsample_size, subsample, *args, **kwargs)
        return self.plates[name]

    def group(self, match: str = ".*") -> "Group":
        """The :class:`Group` of model sample sites whose names match the regex ``match``."""
        if match not in self.groups:
            sites = [
                site
                for name, site in self.prototype_trace.nodes.items()
                if site["type"] == "sample" and re.match(match, name)
            ]
            if not sites:
                raise ValueError(
                    f"{type(self).__name__}.group({match!r}) matches no latent sample site of "
                    f"the model; its latent sites are {list(self.prototype_trace.nodes)}"
                )
            self.groups[match] = Group(self, sites)
        return self.groups[match]

    def map_estimate(self, name: str) -> torch.Tensor:
        """A ``Delta`` guide at a learned (full-size, constrained) value for model site
        ``name``; the param is the attribute ``name`` of this module."""
        site = self._latent_site(name)
        with ExitStack() as stack:
            self._enter_site_plates(stack, site)
            if not hasattr(self, name):
                deep_setattr(self, name, PyroParam(site.init_value, site.support, site.event_dim))
            value = self._subsample(deep_getattr(self, name), site, site.event_dim)
            return pyro.sample(name, Delta(value, event_dim=site.event_dim))

    # --- shared by map_estimate and Group ---------------------------------------------------

    def _latent_site(self, name: str) -> LatentSite:
        """What the prototype trace says about one model site (cached per prototype)."""
        cache = self.__dict__["_latent_sites"]
        if name not in cache:
            if name not in self.prototype_trace.nodes:
                raise KeyError(
                    f"{type(self).__name__}: the model has no latent sample site '{name}'; "
                    f"its latent sites are {list(self.prototype_trace.nodes)}"
                )
            cache[name] = _latent_site(self.prototype_trace.nodes[name])
        return cache[name]

    def _enter_site_plates(self, stack: ExitStack, site: LatentSite) -> None:
        """Enter the site's plates that the guide has not entered around this statement."""
        active = {frame.name for frame in get_plates()}
        for frame in site.frames:
            if frame.name not in active:
                stack.enter_context(self.plate(frame.name))

    def _subsample(self, full: torch.Tensor, site: LatentSite, event_dim: int) -> torch.Tensor:
        for frame in site.frames:
            plate = self.plate(frame.name)
            dim = frame.dim - event_dim
            # A param read inside its subsampled plate arrives already subsampled.
            if plate.subsample_size < plate.size and full.size(dim) == plate.size:
                full = full.index_select(dim, plate.indices.to(full.device))
        return full


def _latent_site(site: dict) -> LatentSite:
    """A model site of the prototype trace, with its init value tiled to full plate size."""
    fn, name = site["fn"], site["name"]
    transform = biject_to(fn.support)
    value = site["value"].detach()
    unconstrained = transform.inv(value).detach()
    u_event_dim = fn.event_dim + unconstrained.dim() - value.dim()
    frames = tuple(f for f in site["cond_indep_stack"] if f.dim is not None)
    full_value, full_unconstrained = value, unconstrained
    for frame in frames:
        full_size = frame.full_size if frame.full_size is not None else frame.size
        if full_size != frame.size:
            full_value = periodic_repeat(full_value, full_size, frame.dim - fn.event_dim)
            full_unconstrained = periodic_repeat(
                full_unconstrained, full_size, frame.dim - u_event_dim
            )
    return LatentSite(
        name=name,
        support=fn.support,
        transform=transform,
        is_identity=strip_independent(fn.support) is constraints.real,
        event_dim=fn.event_dim,
        unconstrained_event_dim=u_event_dim,
        unconstrained_shape=unconstrained.shape,
        frames=frames,
        init_value=full_value.contiguous(),
        init_unconstrained=full_unconstrained.contiguous(),
    )


class _Layout:
    """Where one model site lives in a group's flat blob: ``left`` batch dims outside the
    group's plate dims and the unconstrained ``event`` dims, flattened to ``numel``."""

    def __init__(self, site: LatentSite, batch_rank: int):
        shape = site.unconstrained_shape
        rank = len(shape) - site.unconstrained_event_dim
        split = max(rank - batch_rank, 0)
        self.site = site
        self.left = shape[:split]
        self.window = (1,) * max(batch_rank - rank, 0) + tuple(shape[split:rank])
        self.event = shape[rank:]
        self.numel = self.left.numel() * self.event.numel()

    def unpack(self, flat: torch.Tensor, batch_rank: int) -> torch.Tensor:
        batch = flat.shape[:-1]
        u = flat.reshape(batch + self.left + self.event)
        if self.left:
            first = len(batch)
            u = u.movedim(
                tuple(range(first, first + len(self.left))),
                tuple(range(first - batch_rank, first - batch_rank + len(self.left))),
            )
        return u


class Group:
    """Model sites guided jointly: one auxiliary sample of shape ``batch_shape +
    event_shape`` is split, reshaped and constrained into each site's value.

    :param guide: the :class:`EasyGuide` it belongs to.
    :param sites: the model's sample sites (prototype-trace messages).

    ``event_shape`` is the total size of the sites' unconstrained values per element of the
    plates all sites share (``batch_shape``: those plates' current sizes); ``event_dim``
    is 1, the event dim of the distribution to pass to :meth:`sample`.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     with pyrolite.plate("data", 4):
    ...         pyrolite.sample("x", dist.Normal(0.0, 1.0))
    ...         pyrolite.sample("y", dist.Gamma(torch.ones(2), 1.0).to_event(1))
    >>> class Guide(EasyGuide):
    ...     def guide(self):
    ...         with self.plate("data"):
    ...             group = self.group()
    ...             print(group.batch_shape, group.event_shape, group.event_dim)
    ...             return group.sample("xy", dist.Normal(torch.zeros(4, 3), 1.0).to_event(1))
    >>> _, values = Guide(model)()
    torch.Size([4]) torch.Size([3]) 1
    >>> values["y"].shape
    torch.Size([4, 2])
    """

    event_dim = 1

    def __init__(self, guide: EasyGuide, sites: List[dict]) -> None:
        self._guide = weakref.ref(guide)
        self.prototype_sites = sites
        latent = [guide._latent_site(site["name"]) for site in sites]
        common = frozenset.intersection(*(frozenset(s.frames) for s in latent))
        self.common_frames = common
        self._batch_rank = max((-f.dim for f in common), default=0)
        self._layouts = [_Layout(s, self._batch_rank) for s in latent]
        common_dims = {f.dim for f in common}
        for layout in self._layouts:
            for offset, size in enumerate(layout.window):
                dim = offset - self._batch_rank
                if dim not in common_dims and size != 1:
                    raise ValueError(
                        f"Group of sites {[s.name for s in latent]}: site "
                        f"'{layout.site.name}' has size {size} at batch dim {dim}, which is "
                        "not a plate shared by every site of the group; group sites that "
                        "share their plates, or put that dim in the site's event"
                    )
        self.event_shape = torch.Size([sum(layout.numel for layout in self._layouts)])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_guide"] = self.guide
        return state

    def __setstate__(self, state):
        guide = state.pop("_guide")
        self.__dict__.update(state)
        self._guide = weakref.ref(guide)

    @property
    def guide(self) -> EasyGuide:
        return self._guide()

    @property
    def batch_shape(self) -> torch.Size:
        """The current sizes of the group's shared plates (1 for other dims)."""
        sizes = [1] * self._batch_rank
        for frame in self.common_frames:
            plate = self.guide.plates.get(frame.name)
            sizes[frame.dim] = frame.size if plate is None else plate.subsample_size
        return torch.Size(sizes)

    def sample(
        self, guide_name: str, fn, infer: Optional[dict] = None
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Draw the auxiliary site ``guide_name`` from ``fn`` (event shape
        ``self.event_shape``), then one ``Delta`` site per model site.

        :return: ``(guide_z, model_zs)``: the auxiliary draw and ``{site: constrained
            value}``.
        """
        infer = dict(infer or {})
        infer.setdefault("is_auxiliary", True)
        guide = self.guide
        with ExitStack() as stack:
            active = {frame.name for frame in get_plates()}
            for frame in sorted(self.common_frames, key=lambda f: -f.dim):
                if frame.name not in active:
                    stack.enter_context(guide.plate(frame.name))
            guide_z = pyro.sample(guide_name, fn, infer=infer)
            if guide_z.dim() == 0 or guide_z.shape[-1] != self.event_shape[0]:
                raise ValueError(
                    f"Group.sample('{guide_name}'): the draw has shape {tuple(guide_z.shape)}, "
                    f"but the group's sites {[s['name'] for s in self.prototype_sites]} "
                    f"need a rightmost dim of size {self.event_shape[0]} "
                    "(group.event_shape); give fn that event shape, e.g. with .to_event(1)"
                )
            model_zs = {}
            start = 0
            for layout in self._layouts:
                site = layout.site
                flat = guide_z[..., start : start + layout.numel]
                start += layout.numel
                u = layout.unpack(flat, self._batch_rank)
                value, log_density = site.constrain(u)
                with ExitStack() as site_stack:
                    guide._enter_site_plates(site_stack, site)
                    model_zs[site.name] = pyro.sample(
                        site.name, Delta(value, log_density, event_dim=site.event_dim)
                    )
        return guide_z, model_zs

    def map_estimate(self) -> Dict[str, torch.Tensor]:
        """A MAP (``Delta``) guide for every site of the group: ``{site: value}``."""
        return {
            site["name"]: self.guide.map_estimate(site["name"]) for site in self.prototype_sites
        }


def easy_guide(model: Callable) -> Callable[[Callable], EasyGuide]:
    """Decorator making an :class:`EasyGuide` from a function ``guide(self, *args)``; the
    guide is named after the function (its params are ``"<function name>.<site>"``).

    Guides made this way cannot be pickled; subclass :class:`EasyGuide` for that.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> @easy_guide(model)
    ... def guide(self):
    ...     return self.map_estimate("z")
    >>> pyrolite.clear_param_store()
    >>> _ = guide()
    >>> list(pyrolite.get_param_store().keys())
    ['guide.z']
    """

    def decorator(fn: Callable) -> EasyGuide:
        def guide(self, *args, **kwargs):
            return fn(self, *args, **kwargs)

        cls = type(fn.__name__, (EasyGuide,), {"guide": guide, "__doc__": fn.__doc__})
        return cls(model)

    return decorator
