"""``PyroModule``: an ``nn.Module`` whose attributes can be params and random variables.

``PyroParam`` attributes live in the global ParamStore under the module's dotted
name (``"linear.weight"``) and ``PyroSample`` attributes become sample sites, drawn
once per call of the outermost module. Plain ``nn.Parameter``s are stored too.
"""

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional, Union

import torch
from torch import nn
from torch.distributions import Distribution, constraints, transform_to

from .. import primitives
from ..params import param_store as _param_store

InitValue = Union[torch.Tensor, Callable[[], torch.Tensor], None]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class PyroParam(NamedTuple):
    """Declare a learnable, optionally constrained attribute of a ``PyroModule``.

    ``init_value`` is a constrained tensor (eager), a zero-argument callable (lazy),
    or ``None`` to keep the value of the ``nn.Parameter`` it replaces. It also works
    as a decorator of a method computing the initial value from the module.

    >>> import torch, pyrolite
    >>> from torch.distributions import constraints
    >>> pyrolite.clear_param_store()
    >>> class Scaler(PyroModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = PyroParam(torch.tensor(2.0), constraint=constraints.positive)
    ...     def forward(self, x):
    ...         return self.scale * x
    >>> Scaler()(torch.tensor(3.0))
    tensor(6., grad_fn=<MulBackward0>)
    >>> list(pyrolite.get_param_store().keys())
    ['scale']
    """

    init_value: InitValue = None
    constraint: constraints.Constraint = constraints.real
    event_dim: Optional[int] = None

    def __call__(self, init_fn: Callable[[Any], torch.Tensor]) -> "PyroParam":
        """``@PyroParam(constraint=...)`` on a method: its result is the lazy init."""
        return self._replace(init_value=init_fn)

    def __get__(self, obj, obj_type=None):
        # Used as a method decorator: register on first access, then read as a param.
        if obj is None:
            return self
        name = self.init_value.__name__
        if name not in obj._pyro_params:
            init_fn = self.init_value
            setattr(obj, name, self._replace(init_value=lambda: init_fn(obj)))
        return obj.__getattr__(name)


class PyroSample(NamedTuple):
    """Declare a random attribute of a ``PyroModule``: reading it samples ``prior``.

    ``prior`` is a distribution or a callable ``prior(module) -> distribution``.
    Inside one call of the outermost module the value is drawn once and reused.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> m = PyroModule[torch.nn.Linear](2, 1)
    >>> m.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
    >>> tr = poutine.trace(m).get_trace(torch.ones(3, 2))
    >>> tr.nodes["weight"]["type"], tr.nodes["weight"]["value"].shape
    ('sample', torch.Size([1, 2]))
    """

    prior: Union[Distribution, Callable[[Any], Distribution]]

    def __get__(self, obj, obj_type=None):
        if obj is None:
            return self
        name = self.prior.__name__
        if name not in obj._pyro_samples:
            setattr(obj, name, self)
        return obj.__getattr__(name)


class _Context:
    """Shared by a module tree: sample and param values are cached while a call is active."""

    def __init__(self):
        self.active = 0
        self.cache: Dict[str, Any] = {}

    def __enter__(self):
        self.active += 1

    def __exit__(self, *exc):
        self.active -= 1
        if not self.active:
            self.cache.clear()


class _PyroModuleMeta(type):
    _pyro_mixin_cache: Dict[type, type] = {}

    def __getitem__(cls, Module: type) -> type:
        """``PyroModule[nn.Linear]``: the torch class with PyroModule's attribute handling."""
        if not (isinstance(Module, type) and issubclass(Module, nn.Module)):
            raise TypeError(f"PyroModule[...] expects an nn.Module subclass, got {Module!r}")
        if issubclass(Module, PyroModule):
            return Module
        if Module is nn.Module:
            return PyroModule
        mixed = _PyroModuleMeta._pyro_mixin_cache.get(Module)
        if mixed is None:
            # PyroModule comes first so its __getattr__/__setattr__/__call__ win; the
            # torch class's own __init__ builds the module (pyro fields come from __new__).
            def __init__(self, *args, **kwargs):
                Module.__init__(self, *args, **kwargs)

            mixed = _PyroModuleMeta(
                f"Pyro{Module.__name__}",
                (cls, Module),
                {"__init__": __init__, "__module__": Module.__module__},
            )
            _PyroModuleMeta._pyro_mixin_cache[Module] = mixed
        return mixed


class PyroModule(nn.Module, metaclass=_PyroModuleMeta):
    """An ``nn.Module`` whose attributes may be ``PyroParam``s and ``PyroSample``s.

    Store names follow Pyro: the root module's name is ``name`` (default ``""``),
    a child ``PyroModule`` attribute ``linear`` is named ``"linear"``, and its params
    ``"linear.weight"``. Plain ``nn.Module`` children are registered as Pyro modules
    (``"plain$$$weight"``). During a call of the module (or a ``pyro_method``) the
    ParamStore is the source of truth: a param already in the store is adopted by the
    module, otherwise the module puts its own tensor in the store, so ``SVI`` trains
    what the module uses. Outside a call, attributes read the module's own values.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> class Regression(PyroModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.linear = PyroModule[torch.nn.Linear](3, 1)
    ...         self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))
    ...     def forward(self, x):
    ...         return self.linear(x).squeeze(-1)
    >>> model = Regression()
    >>> model(torch.ones(5, 3)).shape
    torch.Size([5])
    >>> list(pyrolite.get_param_store().keys())
    ['linear.bias']
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        _init_pyro_fields(self)
        return self

    def __init__(self, name: str = ""):
        object.__setattr__(self, "_pyro_name", name)
        super().__init__()

    def __call__(self, *args, **kwargs):
        with self._pyro_context:
            return super().__call__(*args, **kwargs)

    # --- naming ----------------------------------------------------------------------

    def _pyro_set_supermodule(self, name: str, context: _Context) -> None:
        object.__setattr__(self, "_pyro_name", name)
        object.__setattr__(self, "_pyro_context", context)
        for child_name, child in self._modules.items():
            if isinstance(child, PyroModule):
                child._pyro_set_supermodule(_join(name, child_name), context)

    def add_module(self, name: str, module: Optional[nn.Module]) -> None:
        if isinstance(module, PyroModule):
            module._pyro_set_supermodule(_join(self._pyro_name, name), self._pyro_context)
        super().add_module(name, module)

    register_module = add_module

    # --- attribute assignment --------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, PyroParam):
            self._pyro_declare_param(name, value)
        elif isinstance(value, PyroSample):
            old = self._parameters.get(name) if "_parameters" in self.__dict__ else None
            self._pyro_forget(name)
            if old is not None:
                del self._parameters[name]
            self._pyro_samples[name] = value.prior
        elif (
            isinstance(value, torch.Tensor)
            and name in self._pyro_params
            and not (isinstance(value, nn.Parameter))
        ):
            self._pyro_assign_param(name, value)
        else:
            if isinstance(value, PyroModule):
                value._pyro_set_supermodule(_join(self._pyro_name, name), self._pyro_context)
            self._pyro_forget(name)
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._pyro_params or name in self._pyro_samples:
            self._pyro_forget(name)
        else:
            super().__delattr__(name)

    def _pyro_forget(self, name: str) -> None:
        """Drop any PyroParam/PyroSample declared under ``name``."""
        self._pyro_samples.pop(name, None)
        self._pyro_lazy.pop(name, None)
        if self._pyro_params.pop(name, None) is not None:
            self._parameters.pop(name + "_unconstrained", None)
        self._pyro_context.cache.pop(_join(self._pyro_name, name), None)

    def _pyro_declare_param(self, name: str, value: PyroParam) -> None:
        init = value.init_value
        if init is None:
            if name in self._pyro_params:
                init = self.__getattr__(name).detach()
            elif self._parameters.get(name) is not None:
                init = self._parameters[name].detach()
            else:
                raise ValueError(
                    f"PyroParam for '{_join(self._pyro_name, name)}' has init_value=None but "
                    "there is no existing parameter to take the value from; pass a tensor"
                )
        self._pyro_forget(name)
        self._parameters.pop(name, None)
        self._pyro_params[name] = (value.constraint, value.event_dim)
        if isinstance(init, torch.Tensor):
            self._pyro_set_leaf(name, init)
        elif callable(init):
            self._pyro_lazy[name] = init
        else:
            raise TypeError(
                f"PyroParam for '{_join(self._pyro_name, name)}': init_value must be a tensor, "
                f"a zero-argument callable or None, got {type(init).__name__}"
            )

    def _pyro_set_leaf(self, name: str, constrained: torch.Tensor) -> nn.Parameter:
        constraint = self._pyro_params[name][0]
        with torch.no_grad():
            unconstrained = transform_to(constraint).inv(constrained.detach())
        leaf = nn.Parameter(unconstrained.clone(memory_format=torch.contiguous_format))
        self._parameters[name + "_unconstrained"] = leaf
        return leaf

    def _pyro_assign_param(self, name: str, value: torch.Tensor) -> None:
        """``module.scale = tensor`` on a PyroParam updates its value in place (and the store's)."""
        self._pyro_lazy.pop(name, None)
        leaf = self._parameters.get(name + "_unconstrained")
        constraint = self._pyro_params[name][0]
        if leaf is None or leaf.shape != value.shape:
            leaf = self._pyro_set_leaf(name, value)
        else:
            with torch.no_grad():
                leaf.copy_(transform_to(constraint).inv(value.detach()))
        store = _param_store.get_param_store()
        store_name = store.resolve_name(_join(self._pyro_name, name))
        if store_name in store and store.unconstrained(store_name) is not leaf:
            _adopt_leaf(store, store_name, leaf, constraint)
        self._pyro_context.cache.pop(_join(self._pyro_name, name), None)

    # --- attribute reads -------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__["_pyro_params"]:
            return self._pyro_read_param(name)
        if name in self.__dict__["_pyro_samples"]:
            return self._pyro_read_sample(name)
        result = super().__getattr__(name)
        parameters = self.__dict__["_parameters"]
        if name in parameters and result is not None:
            if name.endswith("_unconstrained") and name[: -len("_unconstrained")] in (
                self._pyro_params
            ):
                return result
            return self._pyro_read_torch_param(name, result)
        if (
            self._pyro_context.active
            and name in self.__dict__["_modules"]
            and result is not None
            and not isinstance(result, PyroModule)
        ):
            fullname = _join(self._pyro_name, name)
            cache = self._pyro_context.cache
            if fullname not in cache:
                cache[fullname] = primitives.module(fullname, result)
        return result

    def _pyro_read_param(self, name: str) -> torch.Tensor:
        fullname = _join(self._pyro_name, name)
        context = self._pyro_context
        constraint, event_dim = self._pyro_params[name]
        key = name + "_unconstrained"
        if not context.active:
            # Outside a call (e.g. in a torch __init__) the module's own value is read.
            leaf = self._parameters.get(key)
            if leaf is None:
                leaf = self._pyro_set_leaf(name, self._pyro_lazy.pop(name)())
            return transform_to(constraint)(leaf)
        if fullname in context.cache:
            return context.cache[fullname]
        store = _param_store.get_param_store()
        store_name = store.resolve_name(fullname)
        if store_name in store:
            stored = store.unconstrained(store_name)
            if self._parameters.get(key) is not stored:
                self._parameters[key] = stored  # the module follows the store
                self._pyro_lazy.pop(name, None)
        else:
            leaf = self._parameters.get(key)
            if leaf is None:
                init = self._pyro_lazy.pop(name)()
                leaf = self._pyro_set_leaf(name, init)
            _adopt_leaf(store, store_name, leaf, constraint)
        value = primitives.param(fullname, None, constraint, event_dim)
        context.cache[fullname] = value
        return value

    def _pyro_read_torch_param(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        fullname = _join(self._pyro_name, name)
        context = self._pyro_context
        if not context.active:
            return tensor
        if fullname in context.cache:
            return context.cache[fullname]
        value = primitives.param(fullname, tensor)
        store = _param_store.get_param_store()
        store_name = store.resolve_name(fullname)
        if store_name in store:
            stored = store.unconstrained(store_name)
            if stored is not tensor:
                self._parameters[name] = stored  # the module follows the store
        context.cache[fullname] = value
        return value

    def _pyro_read_sample(self, name: str) -> torch.Tensor:
        fullname = _join(self._pyro_name, name)
        context = self._pyro_context
        if context.active and fullname in context.cache:
            return context.cache[fullname]
        prior = self._pyro_samples[name]
        if not isinstance(prior, Distribution):
            prior = prior(self)
        value = primitives.sample(fullname, prior)
        if context.active:
            context.cache[fullname] = value
        return value


def _init_pyro_fields(module: nn.Module) -> None:
    # object.__setattr__: these are plain Python state, not params/buffers/submodules.
    object.__setattr__(module, "_pyro_name", "")
    object.__setattr__(module, "_pyro_context", _Context())
    object.__setattr__(module, "_pyro_params", {})  # name -> (constraint, event_dim)
    object.__setattr__(module, "_pyro_lazy", {})  # name -> zero-argument init callable
    object.__setattr__(module, "_pyro_samples", {})  # name -> prior


def _adopt_leaf(store, name: str, leaf: torch.Tensor, constraint) -> None:
    """Put the module's own unconstrained tensor in the store, so both share one leaf."""
    store.adopt(name, leaf, constraint)


def pyro_method(fn: Callable) -> Callable:
    """Decorate a ``PyroModule`` method other than ``forward`` so that, like a call,
    it draws each ``PyroSample`` attribute once.
    """

    @functools.wraps(fn)
    def method(self, *args, **kwargs):
        with self._pyro_context:
            return fn(self, *args, **kwargs)

    return method


def to_pyro_module_(module: nn.Module, recurse: bool = True) -> None:
    """Turn an existing ``nn.Module`` (and, with ``recurse``, its children) into PyroModules.

    >>> import torch, pyrolite
    >>> pyrolite.clear_param_store()
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> to_pyro_module_(net)
    >>> _ = net(torch.ones(1, 2))
    >>> sorted(pyrolite.get_param_store().keys())
    ['0.bias', '0.weight']
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"to_pyro_module_ expects an nn.Module, got {type(module).__name__}")
    if not isinstance(module, PyroModule):
        module.__class__ = PyroModule[type(module)]
        _init_pyro_fields(module)
    for name, child in list(module._modules.items()):
        if child is None:
            continue
        if recurse:
            to_pyro_module_(child, recurse=True)
        if isinstance(child, PyroModule):
            child._pyro_set_supermodule(_join(module._pyro_name, name), module._pyro_context)
