"""The modelling primitives: ``sample``, ``param``, ``plate``, ``factor`` and friends.

Outside any handler ``sample`` just draws and ``param`` reads or initializes the
global ``ParamStore``; inside handlers each call becomes a message on the stack.
"""

import copy
import warnings
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable, Optional, Union

import torch

from .distributions.util import check_observation
from .params import param_store as _param_store
from .poutine.mask_messenger import MaskMessenger
from .poutine.plate_messenger import PlateMessenger
from .poutine.runtime import am_i_wrapped, apply_stack, effectful, new_message


def get_param_store():
    """The global ``ParamStoreDict``."""
    return _param_store.get_param_store()


def clear_param_store() -> None:
    """Remove every param from the global store."""
    _param_store.get_param_store().clear()


def sample(name: str, fn, *args, obs=None, obs_mask=None, infer: Optional[dict] = None, **kwargs):
    """Draw (or observe, with ``obs``) a random variable named ``name`` from ``fn``.

    Outside any handler an observation means nothing, so, as in Pyro, it warns
    (``RuntimeWarning``) and returns ``obs``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> with poutine.trace():
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))
    tensor(0.5000)
    """
    if not callable(fn):
        raise TypeError(
            f"sample('{name}', ...) needs a distribution as its second argument, got "
            f"{type(fn).__name__} {fn!r}. Pass one, e.g. "
            f"pyrolite.sample('{name}', dist.Normal(0.0, 1.0))."
        )
    if obs_mask is not None:
        return _masked_observe(name, fn, obs, obs_mask, infer, *args, **kwargs)
    if not am_i_wrapped():
        # Fast path: no handlers, nothing to record.
        if obs is None:
            return fn(*args, **kwargs)
        warnings.warn(
            f"trying to observe a value outside of inference at {name}",
            RuntimeWarning,
            stacklevel=2,
        )
        return obs
    if not isinstance(name, str):
        raise TypeError(f"sample site name must be a str, got {type(name).__name__} {name!r}")
    if isinstance(obs, torch.Tensor):
        check_observation(name, fn, obs, *args, **kwargs)
    msg = new_message(
        "sample",
        name,
        fn,
        args,
        kwargs,
        value=obs,
        is_observed=obs is not None,
        infer=dict(infer) if infer else {},
    )
    apply_stack(msg)
    return msg["value"]


def _masked_observe(name, fn, obs, obs_mask, infer, *args, **kwargs):
    """Partially observed site, as Pyro: ``{name}_observed`` (masked by ``obs_mask``) and
    ``{name}_unobserved`` (masked by ``~obs_mask``) both sample ``fn`` itself, with the
    mask on the site (``site["mask"]``), and their merge is the deterministic site
    ``name``. With ``obs=None`` both parts are latent."""
    if not isinstance(obs_mask, torch.Tensor) or obs_mask.dtype != torch.bool:
        # ValueError, as Pyro raises.
        raise ValueError(
            f"obs_mask at site '{name}' must be a bool tensor, got "
            f"{getattr(obs_mask, 'dtype', type(obs_mask).__name__)}; convert with .bool()"
        )
    with MaskMessenger(obs_mask):
        observed = sample(f"{name}_observed", fn, *args, obs=obs, infer=_copy(infer), **kwargs)
    with MaskMessenger(~obs_mask):
        latent = sample(f"{name}_unobserved", fn, *args, infer=_copy(infer), **kwargs)
    event_dim = len(getattr(fn, "event_shape", ()))
    value = torch.where(obs_mask.reshape(obs_mask.shape + (1,) * event_dim), observed, latent)
    return deterministic(name, value, event_dim=event_dim)


def _copy(infer: Optional[dict]) -> Optional[dict]:
    return dict(infer) if infer else None


def param(
    name: str,
    init_tensor: Union[torch.Tensor, Callable[[], torch.Tensor], float, None] = None,
    constraint=None,
    event_dim: Optional[int] = None,
) -> torch.Tensor:
    """A learnable tensor stored in the global ``ParamStore``; returns its constrained value.

    >>> import torch, pyrolite
    >>> from torch.distributions import constraints
    >>> pyrolite.clear_param_store()
    >>> s = pyrolite.param("s", torch.tensor(2.0), constraint=constraints.positive)
    >>> round(s.item(), 4), s.requires_grad
    (2.0, True)
    """
    store = _param_store.get_param_store()
    name = store.resolve_name(name)
    if isinstance(init_tensor, (int, float)):
        init_tensor = torch.tensor(float(init_tensor))
    if not am_i_wrapped():
        return store.get_param(name, init_tensor, constraint, event_dim)
    msg = new_message("param", name, store.get_param, (name, init_tensor, constraint, event_dim))
    apply_stack(msg)
    return msg["value"]


def module(name: str, nn_module: torch.nn.Module, update_module_params: bool = False):
    """Register every parameter of ``nn_module`` in the ParamStore as ``name$$$param``.

    On first registration the module's own ``nn.Parameter`` objects become the
    store's leaves, so optimizing the store trains the module. If the store
    already holds other values (loaded, or lifted to samples), they are copied
    into the module, or, with ``update_module_params``, put in place of its
    parameters.

    >>> import torch, pyrolite
    >>> pyrolite.clear_param_store()
    >>> net = pyrolite.module("net", torch.nn.Linear(2, 1))
    >>> sorted(pyrolite.get_param_store().keys())
    ['net$$$bias', 'net$$$weight']
    """
    if not isinstance(nn_module, torch.nn.Module):
        raise TypeError(
            f"pyrolite.module('{name}') expects an nn.Module, got {type(nn_module).__name__}"
        )
    replaced = {}
    for param_name, value in list(nn_module.named_parameters()):
        returned = param(_param_store.param_with_module_name(name, param_name), value)
        if returned is not value:
            replaced[param_name] = returned
    if replaced:
        if update_module_params:
            for dotted, tensor in replaced.items():
                *path, attr = dotted.split(".")
                owner = nn_module
                for part in path:
                    owner = getattr(owner, part)
                owner._parameters[attr] = tensor
        else:
            with torch.no_grad():
                nn_module.load_state_dict(replaced, strict=False)
    return nn_module


def random_module(name: str, nn_module: torch.nn.Module, prior, *args, **kwargs) -> Callable:
    """A callable returning a copy of ``nn_module`` whose params are drawn from ``prior``."""
    from .poutine import lift

    def _sample_module():
        module_copy = copy.deepcopy(nn_module)
        return lift(module, prior=prior)(name, module_copy, True, *args, **kwargs)

    return _sample_module


def factor(name: str, log_factor: torch.Tensor, *, has_rsample: Optional[bool] = None) -> None:
    """Add ``log_factor`` to the log-joint (an observed ``Unit`` site, auxiliary)."""
    from .distributions import Unit

    try:
        unit = (
            Unit(log_factor, has_rsample=has_rsample)
            if has_rsample is not None
            else Unit(log_factor)
        )
    except ValueError as e:
        # With validation on, torch rejects a NaN log_factor without naming the site.
        value = torch.as_tensor(log_factor)
        raise ValueError(
            f"factor('{name}'): log_factor (shape {tuple(value.shape)}) has "
            f"{int(torch.isnan(value).sum())} NaN entries; a factor must be a real number "
            "(-inf for an impossible state). Find where the NaN comes from (log of a "
            "negative, 0/0, inf - inf), or mask those entries out of the factor."
        ) from e
    sample(name, unit, obs=unit.sample(), infer={"is_auxiliary": True})


def deterministic(name: str, value: torch.Tensor, event_dim: Optional[int] = None) -> torch.Tensor:
    """Record a deterministic function of other sites; it adds nothing to the log-joint."""
    from .distributions import Delta

    if not am_i_wrapped():
        return value  # nothing records it (and, as in Pyro, no observe-outside warning)
    event_dim = value.dim() if event_dim is None else event_dim
    return sample(
        name,
        Delta(value, event_dim=event_dim).mask(False),
        obs=value,
        infer={"_deterministic": True},
    )


@effectful(type="subsample")
def subsample(data: torch.Tensor, event_dim: int = 0) -> torch.Tensor:
    """Select this plate's subsample of ``data`` along the plate dim (identity outside plates)."""
    return data


class plate(PlateMessenger):
    """Conditionally independent context (vectorized) or iterator (sequential).

    ``size`` items, optionally subsampled to ``subsample_size`` with log-probs
    scaled by ``size / subsample_size``; ``dim`` is the batch dim it owns.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> with pyrolite.plate("data", 3):
    ...     pyrolite.sample("x", dist.Normal(torch.zeros(1), 1.0)).shape
    torch.Size([3])
    """


@contextmanager
def plate_stack(prefix: str, sizes: Iterable[int], rightmost_dim: int = -1):
    """Nested plates named ``prefix_0``... covering ``sizes``, ending at ``rightmost_dim``."""
    sizes = list(sizes)
    with ExitStack() as stack:
        for i, size in enumerate(sizes):
            stack.enter_context(
                plate(f"{prefix}_{i}", size, dim=rightmost_dim - len(sizes) + i + 1)
            )
        yield


def iarange(*args, **kwargs):
    warnings.warn("iarange is deprecated; use plate", FutureWarning)
    return plate(*args, **kwargs)


def irange(*args, **kwargs):
    warnings.warn("irange is deprecated; use plate", FutureWarning)
    return plate(*args, **kwargs)
