"""``AutoGuide``: guides built from a model, plus the per-site ``AutoDelta`` and ``AutoNormal``
and the ``AutoGuideList`` that combines guides.

An autoguide is a ``PyroModule`` named after its class, so its params are module
attributes stored in the ParamStore as ``"AutoNormal.locs.z"``. On its first call it runs
the model once, hidden from every outer handler and with each latent site at its
``init_loc_fn`` value (the *prototype trace*), to learn the latent sites' shapes, supports
and plates, and creates its params. Each call re-creates the model's plates (a subsample is
drawn once per call and replayed into the model), reads each param once, and records one
sample site per latent site of the model, with the model's name, so an ELBO pairs them.
"""

import weakref
from contextlib import ExitStack
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch.distributions import biject_to

from ... import primitives as pyro
from ...distributions import Delta, Normal, constraints
from ...distributions.util import sum_rightmost
from ...nn.module import PyroModule, PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.plate_messenger import CondIndepStackFrame, PlateMessenger
from ...poutine.trace_messenger import TraceMessenger
from ...poutine.trace_struct import Trace
from ..util import strip_independent as strip_independent
from .initialization import InitMessenger, init_to_feasible, init_to_median


class LatentSite(NamedTuple):
    """What an autoguide knows of one latent site of the model, from the prototype trace.

    ``init_value`` is constrained and ``init_unconstrained`` is its image under
    ``transform.inv``, both tiled to the full size of subsampled plates.
    """

    name: str
    support: constraints.Constraint
    transform: torch.distributions.Transform
    is_identity: bool
    event_dim: int  # of the model's distribution
    unconstrained_event_dim: int
    unconstrained_shape: torch.Size  # as in the prototype (subsampled plates at their subsample)
    frames: tuple  # vectorized plate frames, outermost first
    init_value: torch.Tensor
    init_unconstrained: torch.Tensor

    def constrain(self, unconstrained: torch.Tensor, skip_jacobian: bool = False):
        """(constrained value, log-density correction of the point mass at it).

        A guide that draws ``u`` with density ``q(u)`` puts ``z = T(u)`` at density
        ``q(u) / |det dT/du|``, so the correction is ``-log|det dT/du|``.
        """
        if self.is_identity:
            return unconstrained, 0.0
        value = self.transform(unconstrained)
        if skip_jacobian:
            return value, 0.0
        log_det = self.transform.log_abs_det_jacobian(unconstrained, value)
        log_det = sum_rightmost(log_det, log_det.dim() - value.dim() + self.event_dim)
        return value, -log_det


class _GuidePlate:
    """One of the model's plates, as the guide re-creates it during one call.

    A subsample is drawn at most once per call (recording the plate's subsample site,
    which the model's plate then replays), and every guide site in the plate uses it.
    """

    def __init__(
        self,
        name: str,
        size: int,
        subsample_size: int,
        dim: Optional[int],
        user_plate: Optional[PlateMessenger] = None,
        device: Optional[torch.device] = None,
    ):
        self.name, self.size, self.subsample_size, self.dim = name, size, subsample_size, dim
        self.user_plate = user_plate
        self.device = device  # where the indices are drawn: the guide's params' device
        self._indices: Optional[torch.Tensor] = None

    @property
    def subsampled(self) -> bool:
        if self.user_plate is not None:
            return self.user_plate.user_subsample is not None or (
                self.user_plate.subsample_size != self.user_plate.size
            )
        return self.subsample_size != self.size

    @property
    def indices(self) -> torch.Tensor:
        if self._indices is None:
            source = self.user_plate
            if source is None:
                source = PlateMessenger(
                    self.name, self.size, self.subsample_size, dim=self.dim, device=self.device
                )
            self._indices = source.indices
        return self._indices

    def __call__(self) -> PlateMessenger:
        if not self.subsampled:
            return PlateMessenger(self.name, self.size, dim=self.dim, device=self.device)
        return PlateMessenger(self.name, self.size, subsample=self.indices, dim=self.dim)


def periodic_repeat(tensor: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Tile ``tensor`` along ``dim`` (negative) to length ``size``."""
    period = tensor.size(dim)
    repeats = [1] * tensor.dim()
    repeats[dim] = -(-size // period)
    return tensor.repeat(*repeats).narrow(dim, 0, size)


def find_device(args, kwargs) -> Optional[torch.device]:
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    return None


def is_latent(msg: dict) -> bool:
    return msg["type"] == "sample" and not msg["is_observed"] and not msg["infer"].get("_subsample")


def deep_setattr(module: PyroModule, dotted: str, value) -> Tuple[PyroModule, str]:
    """``module.a.b = value`` for the site name ``"a.b"``, creating the ``PyroModule``s on
    the way (as Pyro does, so a dotted site's param is ``"AutoNormal.locs.a.b"``).

    Returns the owner of the attribute and its last name, so a guide can read the param
    with one ``getattr`` per call.
    """
    *path, leaf = dotted.split(".")
    owner = module
    for part in path:
        child = owner._modules.get(part)
        if not isinstance(child, PyroModule):
            setattr(owner, part, PyroModule())
            child = owner._modules[part]
        owner = child
    setattr(owner, leaf, value)
    return owner, leaf


def deep_getattr(module: torch.nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


class AutoGuide(PyroModule):
    """Base of the autoguides: model discovery, plates, and the posterior summaries.

    The guide is a ``PyroModule`` named after its class (``"AutoNormal"``); put it in
    another ``PyroModule`` or an ``AutoGuideList`` and its params take that module's name.

    :param model: the model (a callable); it is not registered as a submodule.
    :param create_plates: optional callable ``(*args, **kwargs) -> plate or list of
        plates`` giving the guide the model's plates, e.g. with a user-controlled
        ``subsample``; other plates are re-created from the prototype trace.
    """

    init_loc_fn: Callable = staticmethod(init_to_median)  # subclasses take their own

    def __init__(self, model: Callable, *, create_plates: Optional[Callable] = None):
        super().__init__(name=type(self).__name__)
        if not callable(model):
            raise TypeError(f"{type(self).__name__} expects a model callable, got {model!r}")
        self._model = (model,)  # a tuple, so an nn.Module model is not made a submodule
        self.create_plates = create_plates
        self._master: Optional[weakref.ref] = None
        self.prototype_trace: Optional[Trace] = None
        self._prototype_frames: Dict[str, CondIndepStackFrame] = {}
        self._frame_devices: Dict[str, torch.device] = {}  # plate -> its sites' device
        self._sites: Dict[str, LatentSite] = {}
        self.plates: Dict[str, _GuidePlate] = {}

    @property
    def model(self) -> Callable:
        return self._model[0]

    def _set(self, name: str, value) -> None:
        # Per-call state: a plain attribute, past PyroModule's and nn.Module's __setattr__.
        self.__dict__[name] = value

    # --- model discovery -------------------------------------------------------------

    def _ensure_setup(self, args, kwargs) -> None:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)

    def _setup_prototype(self, *args, **kwargs) -> None:
        """Run the model once at its init values, hidden from outer handlers."""
        tracer = TraceMessenger()
        init = InitMessenger(self.init_loc_fn, device=find_device(args, kwargs))
        with torch.no_grad(), BlockMessenger(), tracer:
            with BlockMessenger(hide_fn=lambda msg: not is_latent(msg)), init:
                self.model(*args, **kwargs)
        self.prototype_trace = tracer.trace
        self._prototype_frames = {}
        self._frame_devices = {}
        for site in self.prototype_trace.nodes.values():
            value = site["value"]
            for frame in site["cond_indep_stack"]:
                if frame.dim is not None:
                    self._prototype_frames[frame.name] = frame
                    if isinstance(value, torch.Tensor):
                        self._frame_devices.setdefault(frame.name, value.device)
        self._setup_sites()

    def _setup_sites(self) -> None:
        """Collect the latent sites this guide covers (subclasses that guide sites call it)."""
        self._sites = {}
        for name, site in self.prototype_trace.nodes.items():
            if site["infer"].get("enumerate"):
                continue
            self._sites[name] = self._latent_site(name, site)

    def _latent_site(self, name: str, site: dict) -> LatentSite:
        fn, guide = site["fn"], type(self).__name__
        support = fn.support
        if support.is_discrete:
            raise ValueError(
                f"{guide} cannot guide the discrete latent site '{name}' "
                f"({type(fn).__name__}). Hide it from the autoguide with "
                f"poutine.block(model, hide=['{name}']) and guide it yourself in an "
                "AutoGuideList, or mark it infer={'enumerate': 'parallel'} and use "
                "TraceEnum_ELBO."
            )
        for frame in site["cond_indep_stack"]:
            if frame.dim is None:
                raise NotImplementedError(
                    f"{guide} does not support sequential plates: site '{name}' is in the "
                    f"sequential plate('{frame.name}'). Use a vectorized plate "
                    f"(with pyro.plate('{frame.name}', ...)) or write the guide by hand."
                )
        try:
            transform = biject_to(support)
        except NotImplementedError:
            raise ValueError(
                f"{guide}: no bijection to the support {support} of site '{name}' is known, "
                "so it cannot be guided in an unconstrained space; hide the site with "
                "poutine.block and guide it yourself in an AutoGuideList."
            ) from None
        value = site["value"].detach()
        unconstrained = transform.inv(value).detach()
        u_event_dim = fn.event_dim + unconstrained.dim() - value.dim()
        frames = tuple(f for f in site["cond_indep_stack"] if f.dim is not None)
        full_value, full_unconstrained = value, unconstrained
        for frame in frames:
            full_size = frame.full_size if frame.full_size is not None else frame.size
            if full_size != frame.size:
                self._check_can_subsample(name, frame)
                full_value = periodic_repeat(full_value, full_size, frame.dim - fn.event_dim)
                full_unconstrained = periodic_repeat(
                    full_unconstrained, full_size, frame.dim - u_event_dim
                )
        return LatentSite(
            name=name,
            support=support,
            transform=transform,
            is_identity=strip_independent(support) is constraints.real,
            event_dim=fn.event_dim,
            unconstrained_event_dim=u_event_dim,
            unconstrained_shape=unconstrained.shape,
            frames=frames,
            init_value=full_value.contiguous(),
            init_unconstrained=full_unconstrained.contiguous(),
        )

    def _check_can_subsample(self, name: str, frame: CondIndepStackFrame) -> None:
        """Per-site guides index their params by the subsample; flat guides cannot."""

    # --- plates ------------------------------------------------------------------------

    def _create_plates(self, *args, **kwargs) -> Dict[str, _GuidePlate]:
        master = self._master() if self._master is not None else None
        if master is not None:
            self._set("plates", master.plates)
            return master.plates
        plates: Dict[str, _GuidePlate] = {}
        if self.create_plates is not None:
            user = self.create_plates(*args, **kwargs)
            if isinstance(user, PlateMessenger):
                user = [user]
            for p in user:
                frame = self._prototype_frames.get(p.name)
                dim = frame.dim if frame is not None else p.dim_request
                plates[p.name] = _GuidePlate(p.name, p.size, p.subsample_size, dim, user_plate=p)
        for name, frame in self._prototype_frames.items():
            if name not in plates:
                full_size = frame.full_size if frame.full_size is not None else frame.size
                device = self._frame_devices.get(name)
                plates[name] = _GuidePlate(name, full_size, frame.size, frame.dim, device=device)
        self._set("plates", plates)
        return plates

    def _enter_plates(self, stack: ExitStack, site: LatentSite) -> None:
        for frame in site.frames:
            stack.enter_context(self.plates[frame.name]())

    def _subsample(self, full: torch.Tensor, site: LatentSite, event_dim: int) -> torch.Tensor:
        """The part of a full-size per-site tensor that the current subsample selects."""
        for frame in site.frames:
            plate = self.plates[frame.name]
            if plate.subsampled:
                index = plate.indices.to(full.device)
                full = full.index_select(frame.dim - event_dim, index)
        return full

    # --- use -----------------------------------------------------------------------------

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def call(self, *args, **kwargs) -> tuple:
        """The guide's draws as a tuple (in site order), for ``torch.jit`` tracing."""
        return tuple(self(*args, **kwargs).values())

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """{site: posterior median} (constrained; full size for subsampled plates)."""
        raise NotImplementedError

    def quantiles(self, quantiles: Sequence[float], *args, **kwargs) -> Dict[str, torch.Tensor]:
        """{site: tensor of marginal quantiles, stacked along a new leading dim}."""
        raise NotImplementedError

    def sample_posterior(
        self, *args, sample_shape: Sequence[int] = (), **kwargs
    ) -> Dict[str, torch.Tensor]:
        """{site: ``sample_shape`` + site-shape draws from the guide}, no gradients.

        Sites in subsampled plates are drawn at full size.
        """
        raise NotImplementedError

    def _quantile_levels(self, quantiles, like: torch.Tensor) -> torch.Tensor:
        qs = torch.as_tensor(quantiles, dtype=like.dtype, device=like.device).reshape(-1)
        if not bool(((qs > 0) & (qs < 1)).all()):
            raise ValueError(f"quantiles must lie in (0, 1), got {list(qs.tolist())}")
        return qs


def _check_init_scale(guide: str, init_scale: float) -> float:
    if not init_scale > 0:
        raise ValueError(f"{guide}: init_scale must be positive, got {init_scale}")
    return float(init_scale)


class AutoDelta(AutoGuide):
    """MAP estimation: a point mass at a learned value for each latent site.

    Params: one ``PyroParam`` per site, ``AutoDelta.{site}``, constrained to the site's
    support (so this is MAP in the constrained space). Sites in subsampled plates keep a
    full-size param that is indexed by the subsample.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.infer import SVI, Trace_ELBO
    >>> from pyrolite.optim import Adam
    >>> pyrolite.clear_param_store()
    >>> def model(x):
    ...     loc = pyrolite.sample("loc", dist.Normal(0.0, 10.0))
    ...     with pyrolite.plate("data", len(x)):
    ...         pyrolite.sample("x", dist.Normal(loc, 1.0), obs=x)
    >>> guide = AutoDelta(model)
    >>> svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    >>> for _ in range(300):
    ...     _ = svi.step(torch.tensor([1.0, 2.0, 3.0]))
    >>> round(guide.median()["loc"].item(), 2)  # MAP: sum(x) / (n + 1/100) = 6 / 3.01
    1.99
    >>> sorted(pyrolite.get_param_store().keys())
    ['AutoDelta.loc']
    """

    def __init__(
        self,
        model: Callable,
        init_loc_fn: Callable = init_to_median,
        *,
        create_plates: Optional[Callable] = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        readers = []
        for name, site in self._sites.items():
            param = PyroParam(site.init_value, site.support, site.event_dim)
            readers.append((site, *deep_setattr(self, name, param)))
        self._readers = readers

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        result = {}
        for site, owner, attr in self._readers:
            loc = self._subsample(getattr(owner, attr), site, site.event_dim)
            with ExitStack() as stack:
                self._enter_plates(stack, site)
                result[site.name] = pyro.sample(site.name, Delta(loc, event_dim=site.event_dim))
        return result

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            return {site.name: getattr(o, a).detach() for site, o, a in self._readers}

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """Every quantile of a point mass is the point."""
        medians = self.median(*args, **kwargs)
        out = {}
        for name, value in medians.items():
            n = self._quantile_levels(quantiles, value).numel()
            out[name] = value.expand((n,) + value.shape).clone()
        return out

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        medians = self.median(*args, **kwargs)
        shape = torch.Size(sample_shape)
        return {name: v.expand(shape + v.shape).clone() for name, v in medians.items()}


class AutoNormal(AutoGuide):
    """Mean-field Normal in the unconstrained space, one loc/scale pair per latent site.

    Params: ``AutoNormal.locs.{site}`` (real) and ``AutoNormal.scales.{site}``
    (``softplus_positive``), of the site's unconstrained shape (full size in subsampled
    plates, indexed by the subsample); ``guide.locs.z`` reads one. A real-valued site is
    drawn directly from its Normal; a constrained one as the auxiliary
    ``{site}_unconstrained`` Normal draw mapped through ``biject_to(support)``, with the
    Jacobian in the point mass's log-density so ``log q`` is exact.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("s", dist.LogNormal(0.0, 1.0))
    >>> guide = AutoNormal(model, init_loc_fn=lambda site: torch.tensor(2.0), init_scale=0.5)
    >>> sorted(guide().keys()), sorted(pyrolite.get_param_store().keys())
    (['s'], ['AutoNormal.locs.s', 'AutoNormal.scales.s'])
    >>> guide.median()["s"]
    tensor(2.)
    >>> [name for name, _ in guide.named_parameters()]
    ['locs.s_unconstrained', 'scales.s_unconstrained']
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        create_plates: Optional[Callable] = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.locs = PyroModule()
        self.scales = PyroModule()
        readers = []
        for name, site in self._sites.items():
            init = site.init_unconstrained
            event_dim = site.unconstrained_event_dim
            loc = PyroParam(init, constraints.real, event_dim)
            scale_init = torch.full_like(init, self._init_scale)
            scale = PyroParam(scale_init, self.scale_constraint, event_dim)
            readers.append(
                (
                    site,
                    *deep_setattr(self.locs, name, loc),
                    *deep_setattr(self.scales, name, scale),
                )
            )
        self._readers = readers

    def _get_loc_and_scale(self, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        return deep_getattr(self.locs, name), deep_getattr(self.scales, name)

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        skip_jacobian = _mask_is_false()
        result = {}
        for site, loc_owner, loc_attr, scale_owner, scale_attr in self._readers:
            event_dim = site.unconstrained_event_dim
            loc = self._subsample(getattr(loc_owner, loc_attr), site, event_dim)
            scale = self._subsample(getattr(scale_owner, scale_attr), site, event_dim)
            posterior = Normal(loc, scale).to_event(event_dim)
            name = site.name
            with ExitStack() as stack:
                self._enter_plates(stack, site)
                if site.is_identity:
                    result[name] = pyro.sample(name, posterior)
                    continue
                unconstrained = pyro.sample(
                    f"{name}_unconstrained", posterior, infer={"is_auxiliary": True}
                )
                value, log_density = site.constrain(unconstrained, skip_jacobian)
                result[name] = pyro.sample(
                    name, Delta(value, log_density=log_density, event_dim=site.event_dim)
                )
        return result

    def _loc_scale_of_sites(self):
        for site, loc_owner, loc_attr, scale_owner, scale_attr in self._readers:
            yield site, getattr(loc_owner, loc_attr), getattr(scale_owner, scale_attr)

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            return {
                site.name: site.constrain(loc, True)[0].detach()
                for site, loc, _ in self._loc_scale_of_sites()
            }

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        out = {}
        with torch.no_grad(), self._pyro_context:
            for site, loc, scale in self._loc_scale_of_sites():
                qs = self._quantile_levels(quantiles, loc).reshape((-1,) + (1,) * loc.dim())
                u = Normal(loc, scale).icdf(qs)
                out[site.name] = site.constrain(u, True)[0].detach()
        return out

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        out = {}
        with torch.no_grad(), self._pyro_context:
            for site, loc, scale in self._loc_scale_of_sites():
                u = Normal(loc, scale).sample(torch.Size(sample_shape))
                out[site.name] = site.constrain(u, True)[0]
        return out


def _mask_is_false() -> bool:
    """True inside ``poutine.mask(mask=False)``, where the Jacobian term is not needed."""
    from ...poutine.runtime import get_mask

    return get_mask() is False


class AutoCallable(AutoGuide):
    """A hand-written guide function as a part of an ``AutoGuideList``.

    ``median`` is an optional callable ``(*args, **kwargs) -> {site: value}``.
    """

    def __init__(self, model: Callable, guide: Callable, median: Optional[Callable] = None):
        super().__init__(model)
        self._guide = (guide,)  # not a submodule: its params are its own business
        self._median = median

    @property
    def guide(self) -> Callable:
        return self._guide[0]

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        result = self.guide(*args, **kwargs)
        return result if isinstance(result, dict) else {}

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return {} if self._median is None else dict(self._median(*args, **kwargs))

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return {}

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        shape = torch.Size(sample_shape)
        draws: Dict[str, List[torch.Tensor]] = {}
        with torch.no_grad():
            for _ in range(shape.numel()):
                tracer = TraceMessenger()
                with BlockMessenger(), tracer:
                    self.guide(*args, **kwargs)
                for name, site in tracer.trace.nodes.items():
                    if is_latent(site) and not site["infer"].get("is_auxiliary"):
                        draws.setdefault(name, []).append(site["value"])
        return {n: torch.stack(v).reshape(shape + v[0].shape) for n, v in draws.items()}


class AutoGuideList(AutoGuide):
    """A guide made of parts, each guiding some of the model's latent sites.

    Parts are autoguides (usually of a ``poutine.block``-ed model) or plain guide
    functions; part ``i`` is the submodule ``"i"``, so its params are named
    ``"AutoGuideList.0.loc"``. The list re-creates the model's plates once per call and
    the autoguide parts share them, so every part sees the same subsample.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.infer.autoguide import AutoDiagonalNormal
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide_z():
    ...     pyrolite.sample("z", dist.Normal(pyrolite.param("z_loc", torch.tensor(0.0)), 1.0))
    >>> guide = AutoGuideList(model)
    >>> guide.append(AutoDiagonalNormal(poutine.block(model, hide=["z"])))
    >>> guide.append(guide_z)
    >>> sorted(poutine.trace(guide).get_trace().stochastic_nodes)
    ['_AutoGuideList.0_latent', 'a', 'z']
    >>> sorted(pyrolite.get_param_store().keys())
    ['AutoGuideList.0.loc', 'AutoGuideList.0.scale', 'z_loc']
    """

    def __init__(self, model: Callable, *, create_plates: Optional[Callable] = None):
        super().__init__(model, create_plates=create_plates)

    def append(self, part: Union[AutoGuide, Callable]) -> None:
        if isinstance(part, AutoGuide):
            if part._master is not None:
                raise RuntimeError(f"{type(part).__name__} is already part of an AutoGuideList")
            part._master = weakref.ref(self)
        elif callable(part):
            part = AutoCallable(self.model, part)
        else:
            raise TypeError(
                f"AutoGuideList.append expects an autoguide or a guide callable, got {part!r}"
            )
        self.add_module(str(len(self._modules)), part)

    def add(self, part) -> None:
        self.append(part)

    def extend(self, parts: Iterable) -> None:
        for part in parts:
            self.append(part)

    def __getitem__(self, index: int) -> AutoGuide:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterable[AutoGuide]:
        return iter(self._modules.values())

    def _setup_sites(self) -> None:
        self._sites = {}  # the parts own the sites; the list only needs the plates

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        result: Dict[str, torch.Tensor] = {}
        for part in self._modules.values():
            result.update(part(*args, **kwargs))
        return result

    def _union(self, method: str, *args, **kwargs) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        for part in self._modules.values():
            out.update(getattr(part, method)(*args, **kwargs))
        return out

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return self._union("median", *args, **kwargs)

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        return self._union("quantiles", quantiles, *args, **kwargs)

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        return self._union("sample_posterior", *args, sample_shape=sample_shape, **kwargs)
