"""Init strategies: where an autoguide starts, as a function ``site -> constrained value``.

Each strategy takes a model's sample site (a message dict with ``"name"`` and ``"fn"``)
and returns a value in the site's support. ``InitMessenger`` runs a model with every
latent site set by a strategy; autoguides use it to discover the model at its init.
Strategies with options are configured by calling them without a site, e.g.
``init_to_median(num_samples=31)`` or ``init_to_value(values={"z": torch.tensor(1.0)})``.
"""

import functools
from typing import Callable, Dict, Optional

import torch
from torch.distributions import biject_to

from ...poutine.messenger import Messenger
from ...poutine.runtime import Message
from ...process_state import is_validation_enabled

InitFn = Callable[[dict], torch.Tensor]


def _value_shape(fn) -> torch.Size:
    return torch.Size(fn.batch_shape) + torch.Size(fn.event_shape)


def _param_dtype_device(fn):
    """The dtype and device of ``fn``'s first floating-point tensor parameter (looking
    through ``base_dist`` wrappers); the default dtype and None (CPU) if it has none."""
    for _ in range(8):
        attributes = getattr(fn, "__dict__", None)
        if attributes is None:
            break
        for value in attributes.values():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.dtype, value.device
        fn = attributes.get("base_dist")
    return torch.get_default_dtype(), None


def _unconstrained_zeros(site: dict) -> torch.Tensor:
    """Zeros in the unconstrained space of ``site``, found without sampling ``fn``, of the
    dtype and on the device of its parameters.

    Needed for distributions that cannot be sampled (``ImproperUniform``).
    """
    fn = site["fn"]
    transform = biject_to(fn.support)
    shape = transform.inverse_shape(_value_shape(fn))
    dtype, device = _param_dtype_device(fn)
    return torch.zeros(shape, dtype=dtype, device=device)


def _base_event_dim(support) -> int:
    while hasattr(support, "base_constraint"):
        support = support.base_constraint
    return support.event_dim


def init_to_feasible(site: Optional[dict] = None) -> torch.Tensor:
    """The image of zero under ``biject_to(support)``: 0 for reals, 1 for positives, ...

    >>> import pyrolite.distributions as dist
    >>> init_to_feasible({"name": "s", "fn": dist.LogNormal(3.0, 1.0)})
    tensor(1.)
    """
    if site is None:
        return init_to_feasible
    transform = biject_to(site["fn"].support)
    return transform(_unconstrained_zeros(site)).detach()


def init_to_uniform(site: Optional[dict] = None, radius: float = 2.0) -> torch.Tensor:
    """Uniform on ``(-radius, radius)`` in the unconstrained space, mapped to the support.

    >>> import torch, pyrolite.distributions as dist
    >>> _ = torch.manual_seed(0)
    >>> v = init_to_uniform(radius=0.5)({"name": "s", "fn": dist.HalfNormal(1.0)})
    >>> bool(v.log().abs() < 0.5)  # exp of a point in (-0.5, 0.5)
    True
    """
    if site is None:
        return functools.partial(init_to_uniform, radius=radius)
    transform = biject_to(site["fn"].support)
    zeros = _unconstrained_zeros(site)
    return transform(torch.rand_like(zeros) * (2 * radius) - radius).detach()


def init_to_sample(site: Optional[dict] = None) -> torch.Tensor:
    """One draw from the prior (falls back to ``init_to_uniform`` if it cannot be sampled)."""
    if site is None:
        return init_to_sample
    try:
        return site["fn"].sample().detach()
    except NotImplementedError:
        return init_to_uniform(site)


def init_to_median(
    site: Optional[dict] = None, num_samples: int = 15, *, fallback: Optional[InitFn] = None
) -> torch.Tensor:
    """The elementwise median of ``num_samples`` prior draws.

    Multivariate supports (simplex, Cholesky factors, ...), whose elementwise median can
    leave the support, and distributions that cannot be sampled use ``fallback``
    (default ``init_to_feasible``).

    >>> import torch, pyrolite.distributions as dist
    >>> _ = torch.manual_seed(0)
    >>> v = init_to_median(num_samples=1001)({"name": "z", "fn": dist.Normal(5.0, 1.0)})
    >>> abs(v.item() - 5.0) < 0.1
    True
    """
    if site is None:
        return functools.partial(init_to_median, num_samples=num_samples, fallback=fallback)
    fallback = init_to_feasible if fallback is None else fallback
    fn = site["fn"]
    if _base_event_dim(fn.support) > 0 or fn.support.is_discrete:
        return fallback(site)
    try:
        samples = fn.sample((num_samples,))
    except NotImplementedError:
        return fallback(site)
    return samples.median(dim=0).values.detach()


def init_to_mean(site: Optional[dict] = None, *, fallback: Optional[InitFn] = None) -> torch.Tensor:
    """The prior mean; where it is undefined or infinite, ``fallback`` (``init_to_median``).

    >>> import pyrolite.distributions as dist
    >>> init_to_mean({"name": "r", "fn": dist.Gamma(2.0, 4.0)})
    tensor(0.5000)
    """
    if site is None:
        return functools.partial(init_to_mean, fallback=fallback)
    fallback = init_to_median if fallback is None else fallback
    try:
        value = site["fn"].mean.detach()
    except NotImplementedError:
        return fallback(site)
    if not torch.isfinite(value).all():
        return fallback(site)
    return value


def init_to_value(
    site: Optional[dict] = None,
    values: Optional[Dict[str, torch.Tensor]] = None,
    *,
    fallback: Optional[InitFn] = None,
) -> torch.Tensor:
    """The value given in ``values`` for the site; other sites use ``fallback``
    (default ``init_to_median``).

    >>> import torch, pyrolite.distributions as dist
    >>> init = init_to_value(values={"z": torch.tensor(2.5)})
    >>> init({"name": "z", "fn": dist.Normal(0.0, 1.0)})
    tensor(2.5000)
    """
    values = {} if values is None else values
    if site is None:
        return functools.partial(init_to_value, values=values, fallback=fallback)
    if site["name"] in values:
        value = torch.as_tensor(values[site["name"]])
        return value.detach()
    fallback = init_to_median if fallback is None else fallback
    return fallback(site)


def _broadcast_to_plates(msg: Message):
    """The site's distribution expanded to the sizes of its vectorized plates.

    The init value must have the site's full shape inside plates, whether or not the
    plates have broadcast the distribution yet when this handler sees the site.
    """
    fn = msg["fn"]
    batch = list(fn.batch_shape)
    for frame in msg["cond_indep_stack"]:
        if frame.dim is None or frame.size == -1:
            continue
        if -frame.dim > len(batch):
            batch = [1] * (-frame.dim - len(batch)) + batch
        if batch[frame.dim] == 1:
            batch[frame.dim] = frame.size
    if tuple(batch) == tuple(fn.batch_shape):
        return fn
    expanded = fn.expand(torch.Size(batch))
    if getattr(fn, "has_rsample", None) != getattr(expanded, "has_rsample", None):
        expanded.has_rsample = fn.has_rsample
    return expanded


class InitMessenger(Messenger):
    """Give every latent sample site the value ``init_fn(site)`` instead of a prior draw.

    Observed, discrete, enumerated and plate-subsample sites, and sites that already
    hold a value, are left alone. With validation on, a value outside the site's support
    is an error.
    ``device`` moves init values next to the data (a strategy may build them on CPU).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     return pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> InitMessenger(init_to_value(values={"z": torch.tensor(0.3)}))(model)()
    tensor(0.3000)
    """

    def __init__(self, init_fn: InitFn, device: Optional[torch.device] = None):
        self.init_fn = init_fn
        self.device = device

    def _pyro_sample(self, msg: Message) -> None:
        if msg["done"] or msg["is_observed"] or msg["value"] is not None:
            return
        if msg["infer"].get("_subsample") or msg["infer"].get("enumerate"):
            return
        if msg["fn"].support.is_discrete:
            return  # no unconstrained space to initialize in: a prior draw
        name, fn = msg["name"], _broadcast_to_plates(msg)
        msg["fn"] = fn

        with torch.no_grad():
            value = self.init_fn(msg)
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"init strategy {self.init_fn!r} returned {type(value).__name__} for site "
                f"'{name}'; it must return a tensor"
            )
        if self.device is not None and value.device != self.device:
            value = value.to(self.device)
        shape = _value_shape(fn)
        if tuple(value.shape) != tuple(shape):
            try:
                value = value.expand(shape)
            except RuntimeError:
                raise ValueError(
                    f"init value for site '{name}' has shape {tuple(value.shape)}, but the "
                    f"site's distribution has shape {tuple(shape)} (batch + event); give a "
                    "value of that shape (or one that broadcasts to it)"
                ) from None
        if is_validation_enabled() and not bool(fn.support.check(value).all()):
            raise ValueError(
                f"init value for site '{name}' lies outside its support {fn.support}: "
                f"{value}. Give a value inside the support (e.g. positive for a scale)."
            )
        msg["value"] = value
        msg["done"] = True


class _InitToGenerated:
    """The strategy ``generate()`` returns, regenerated once per model execution: a new
    execution is detected when a site name is seen again."""

    def __init__(self, generate: Callable[[], InitFn]):
        self.generate = generate
        self._init: Optional[InitFn] = None
        self._seen: set = set()

    def __call__(self, site: dict) -> torch.Tensor:
        name = site["name"]
        if self._init is None or name in self._seen:
            self._init = self.generate()
            self._seen = set()
        self._seen.add(name)
        return self._init(site)


def init_to_generated(
    site: Optional[dict] = None, generate: Callable[[], InitFn] = lambda: init_to_uniform
):
    """The strategy returned by ``generate()``, called once per model execution, so it can
    give new (e.g. random) values each time, unlike ``init_to_value``.

    >>> import torch, pyrolite.distributions as dist
    >>> draws = iter([1.0, 2.0])
    >>> init = init_to_generated(
    ...     generate=lambda: init_to_value(values={"x": torch.tensor(next(draws))})
    ... )
    >>> site = {"name": "x", "fn": dist.Normal(0.0, 1.0)}
    >>> init(site), init(site)  # "x" again: a new execution, a new strategy
    (tensor(1.), tensor(2.))
    """
    init = _InitToGenerated(generate)
    return init if site is None else init(site)
