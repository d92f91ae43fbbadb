"""``PyroModule``: an ``nn.Module`` whose attributes can be params and random variables.

``PyroParam`` attributes live in the global ParamStore under the module's dotted
name (``"linear.weight"``) and ``PyroSample`` attributes become sample sites, drawn
once per call of the outermost module. Plain ``nn.Parameter``s are stored too. With the
``module_local_params`` setting each module keeps its params itself (the store stays
empty) and still records them as param sites. ``PyroModuleList`` is the list container.
"""

import functools
from typing import Any, Callable, Dict, Iterable, NamedTuple, Optional, Union

import torch
from torch import nn
from torch.distributions import Distribution, constraints, transform_to

from .. import primitives
from ..params import param_store as _param_store
from ..poutine.messenger import Messenger
from ..poutine.runtime import am_i_wrapped, apply_stack, new_message

# Set through ``pyrolite.settings.set(module_local_params=True)``; read once per call.
_MODULE_LOCAL_PARAMS = False

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


def _local_value(value: torch.Tensor, constraint=None, event_dim=None) -> torch.Tensor:
    """The default effect of a module-local param site: the module's own value."""
    return value


def _local_param_site(name: str, value: torch.Tensor, constraint=None, event_dim=None):
    """Record a module-local param as a ``param`` site (handlers may substitute it)."""
    if not am_i_wrapped():
        return value
    msg = new_message("param", name, _local_value, (value,))
    msg["kwargs"] = {"constraint": constraint, "event_dim": event_dim}
    apply_stack(msg)
    return msg["value"]


class _GlobalParamGuard(Messenger):
    """Active during a call of a module in local param mode: global params are refused,
    since the store is bypassed there and a mix of both would train only half the model."""

    def _pyro_param(self, msg) -> None:
        if msg["fn"] is not _local_value:
            raise NotImplementedError(
                "Support for global pyro.param statements in PyroModules with local param "
                "mode enabled is not yet implemented."
            )


class _Context:
    """Shared by a module tree: sample and param values are cached while a call is active.

    ``local`` (the ``module_local_params`` setting, read when the outermost call starts)
    says whether params bypass the ParamStore during this call.
    """

    def __init__(self):
        self.active = 0
        self.local = False
        self.guard: Optional[_GlobalParamGuard] = None
        self.cache: Dict[str, Any] = {}

    def __enter__(self):
        self.active += 1
        if self.active == 1 and _MODULE_LOCAL_PARAMS:
            self.local = True
            self.guard = _GlobalParamGuard().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        self.active -= 1
        if not self.active:
            self.cache.clear()
            if self.guard is not None:
                guard, self.guard, self.local = self.guard, None, False
                guard.__exit__(exc_type, exc_value, traceback)


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
        """Drop any PyroParam/PyroSample declared under ``name``.

        A param the module had (``PyroParam`` or ``nn.Parameter``) also leaves the
        ParamStore, as in Pyro: whatever replaces it starts from its own value and
        constraint instead of the old entry's.
        """
        self._pyro_samples.pop(name, None)
        self._pyro_lazy.pop(name, None)
        had_param = self._pyro_params.pop(name, None) is not None
        if had_param:
            self._parameters.pop(name + "_unconstrained", None)
        elif "_parameters" in self.__dict__ and self._parameters.get(name) is not None:
            had_param = True
        fullname = _join(self._pyro_name, name)
        self._pyro_context.cache.pop(fullname, None)
        if had_param and not _MODULE_LOCAL_PARAMS:
            store = _param_store.get_param_store()
            store_name = store.resolve_name(fullname)
            if store_name in store:
                del store[store_name]

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
        self._pyro_context.cache.pop(_join(self._pyro_name, name), None)
        if _MODULE_LOCAL_PARAMS:
            return
        store = _param_store.get_param_store()
        store_name = store.resolve_name(_join(self._pyro_name, name))
        if store_name in store and store.unconstrained(store_name) is not leaf:
            _adopt_leaf(store, store_name, leaf, constraint)

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
            context = self._pyro_context
            if fullname not in context.cache:
                if context.local:
                    for pname, p in result.named_parameters():
                        _local_param_site(f"{fullname}$$${pname}", p)
                    context.cache[fullname] = result
                else:
                    context.cache[fullname] = primitives.module(fullname, result)
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
        if context.local:
            leaf = self._parameters.get(key)
            if leaf is None:
                leaf = self._pyro_set_leaf(name, self._pyro_lazy.pop(name)())
            value = transform_to(constraint)(leaf)
            value = _local_param_site(fullname, value, constraint, event_dim)
            context.cache[fullname] = value
            return value
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
        if context.local:
            value = _local_param_site(fullname, tensor)
            context.cache[fullname] = value
            return value
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


class PyroModuleList(nn.ModuleList, PyroModule):
    """``nn.ModuleList`` as a ``PyroModule`` (also ``PyroModule[nn.ModuleList]``): item
    ``i`` is the child ``"i"``, so its params are named ``"{list}.{i}.weight"``.

    A slice is a ``PyroModuleList`` of the same modules, which keep their names (slicing
    does not re-parent them), so a forward loop over ``self.layers[1:]`` trains the
    params ``"layers.1.weight"``, ... that a loop over the whole list would.

    >>> import torch, pyrolite
    >>> pyrolite.clear_param_store()
    >>> layers = PyroModuleList([PyroModule[torch.nn.Linear](2, 2) for _ in range(3)])
    >>> tail = layers[1:]
    >>> type(tail).__name__, [m._pyro_name for m in tail]
    ('PyroModuleList', ['1', '2'])
    >>> _ = tail[0](torch.ones(2))
    >>> sorted(pyrolite.get_param_store().keys())
    ['1.bias', '1.weight']
    """

    def __init__(self, modules: Optional[Iterable[nn.Module]]):
        super().__init__(modules)

    def __getitem__(self, idx: Union[int, slice]) -> Union[nn.Module, "PyroModuleList"]:
        if not isinstance(idx, slice):
            return super().__getitem__(idx)
        out = PyroModuleList(None)
        object.__setattr__(out, "_pyro_name", self._pyro_name)
        object.__setattr__(out, "_pyro_context", self._pyro_context)
        for i, module in enumerate(list(self._modules.values())[idx]):
            out._modules[str(i)] = module  # not add_module: the modules keep their names
        return out


_PyroModuleMeta._pyro_mixin_cache[nn.ModuleList] = PyroModuleList


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
