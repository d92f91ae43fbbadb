"""The process-wide parameter store behind ``pyro.param``.

Each param is an unconstrained leaf tensor (what optimizers step) plus its constraint;
reading a param maps the leaf through ``transform_to(constraint)`` so gradients of the
constrained value reach the leaf. Checkpoints hold plain data only.
"""

import re
import warnings
import weakref
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch.distributions import constraints, transform_to
from torch.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    IndependentTransform,
    Transform,
)

from pyrolite.params.constraint_codec import (
    constraints_equal,
    decode_constraint,
    describe_constraint,
    encode_constraint,
    torch_constraint_classes,
)
from pyrolite.params.serialization import PathLike, load_weights_only, save_atomic
from pyrolite.process_state import is_validation_enabled

InitValue = Union[torch.Tensor, Callable[[], torch.Tensor]]
StateDict = Dict[str, Dict[str, Any]]


class _Entry:
    """One param: its leaf, its constraint, and the cached leaf -> constrained transform."""

    __slots__ = ("leaf", "constraint", "transform", "ref", "shape", "loaded")

    def __init__(
        self, leaf: torch.Tensor, constraint, transform: Optional[Transform], loaded: bool
    ):
        self.leaf = leaf
        self.constraint = constraint
        self.transform = transform  # None when the transform is the identity
        self.ref = weakref.ref(leaf)  # Pyro exposes it as ``constrained.unconstrained``
        self.shape = _constrained_shape(leaf, transform)  # None where it cannot be told
        # Built from a saved state and not yet bound to a module's own tensor (see
        # ``get_param``): a module registered after a load adopts the loaded values.
        self.loaded = loaded


class ParamStoreDict:
    """Named params, stored unconstrained, read constrained.

    >>> store = ParamStoreDict()
    >>> scale = store.get_param("scale", torch.tensor([0.5, 2.0]), constraints.positive)
    >>> scale
    tensor([0.5000, 2.0000], grad_fn=<ExpBackward0>)
    >>> store.unconstrained("scale")  # log(scale), the leaf an optimizer steps
    tensor([-0.6931,  0.6931], requires_grad=True)
    >>> store.param_name(store.unconstrained("scale"))
    'scale'
    >>> sorted(store.get_state())
    ['constraints', 'params']
    """

    def __init__(self) -> None:
        self._entries: Dict[str, _Entry] = {}
        self._name_by_id: Dict[int, str] = {}  # id(leaf) -> name, for optimizers
        self._prefix = ""  # active name scope, "outer/inner/" or ""
        self._clears = 0
        self._installs = 0

    # ------------------------------------------------------------------ hot path

    def get_param(
        self,
        name: str,
        init_tensor: Optional[InitValue] = None,
        constraint: Optional[constraints.Constraint] = None,
        event_dim: Optional[int] = None,
    ) -> torch.Tensor:
        """The constrained value of ``name``, created from ``init_tensor`` if absent.

        ``init_tensor`` (a tensor, or a zero-argument callable returning one) is in
        constrained space and is ignored when the param exists. ``constraint=None`` means
        the stored constraint (``constraints.real`` for a new param); an explicit one
        must match the stored one. ``event_dim`` is accepted for Pyro and ignored.

        An init tensor whose shape, dtype or device differs from the existing param's
        raises ``ValueError``
        (Pyro silently returns the old param): delete the param first
        (``del store[name]``) or assign it (``store[name] = value``) to replace it. An
        ``nn.Parameter`` init (``pyro.module``) meeting a param loaded from a checkpoint
        takes the loaded values in place and becomes the param, so the module trains on.

        >>> store = ParamStoreDict()
        >>> store.get_param("p", lambda: torch.tensor(0.25), constraints.unit_interval)
        tensor(0.2500, grad_fn=<ClampBackward1>)
        >>> store.get_param("p")  # later reads need only the name
        tensor(0.2500, grad_fn=<ClampBackward1>)
        """
        entry = self._entries.get(name)
        if entry is None:
            return self._create(name, init_tensor, constraint)
        if constraint is not None and constraint is not entry.constraint:
            self._check_redeclared(name, entry.constraint, constraint)
        if isinstance(init_tensor, torch.Tensor):
            leaf = entry.leaf
            if (
                (entry.shape is not None and init_tensor.shape != entry.shape)
                or init_tensor.dtype != leaf.dtype
                or init_tensor.device != leaf.device
            ):
                self._raise_reshaped(name, entry, init_tensor)
            if entry.loaded and init_tensor is not entry.leaf:
                bound = self._bind_loaded(name, entry, init_tensor)
                if bound is not None:
                    return bound
        transform = entry.transform
        if transform is None:
            return entry.leaf
        value = transform(entry.leaf)
        value.unconstrained = entry.ref
        return value

    def resolve_name(self, name: str) -> str:
        """``name`` inside the active :meth:`scope` prefixes, e.g. ``"vae/loc"``."""
        prefix = self._prefix
        return prefix + name if prefix else name

    # ------------------------------------------------------------------ dict interface

    def __getitem__(self, name: str) -> torch.Tensor:
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"param {name!r} is not in the param store")
        return self._read(entry)

    def __setitem__(self, name: str, constrained_value: torch.Tensor) -> None:
        """Set a param from a constrained value, keeping its constraint (real if new)."""
        entry = self._entries.get(name)
        constraint = constraints.real if entry is None else entry.constraint
        self._install(name, *self._make_leaf(name, constrained_value, constraint))

    def setdefault(
        self,
        name: str,
        init_constrained_value: InitValue,
        constraint: constraints.Constraint = constraints.real,
    ) -> torch.Tensor:
        """The constrained value of ``name``, created with ``constraint`` if absent.

        As in Pyro, an existing param is returned as is, whatever ``constraint`` says.

        >>> store = ParamStoreDict()
        >>> store.setdefault("w", torch.zeros(2))
        tensor([0., 0.], requires_grad=True)
        >>> store.setdefault("w", torch.ones(2))
        tensor([0., 0.], requires_grad=True)
        """
        if name not in self._entries:
            return self._create(name, init_constrained_value, constraint)
        return self[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __delitem__(self, name: str) -> None:
        entry = self._entries.pop(name)
        self._name_by_id.pop(id(entry.leaf), None)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def keys(self):
        return self._entries.keys()

    def values(self) -> Iterator[torch.Tensor]:
        """Constrained values."""
        for entry in list(self._entries.values()):
            yield self._read(entry)

    def items(self) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, constrained value)`` pairs."""
        for name, entry in list(self._entries.items()):
            yield name, self._read(entry)

    def clear(self) -> None:
        self._entries.clear()
        self._name_by_id.clear()
        self._clears += 1

    @property
    def install_count(self) -> int:
        """How many leaves were installed (a param created, replaced or loaded): what
        was read before is still what is read while it is unchanged."""
        return self._installs

    @property
    def clear_count(self) -> int:
        """How many times the store was cleared: state that belongs with the params (an
        ELBO's baseline averages) starts afresh when it changes, as if it lived here."""
        return self._clears

    # ------------------------------------------------------------------ Pyro's other accessors

    def named_parameters(self):
        """``(name, unconstrained leaf)`` pairs: what an optimizer steps."""
        return {name: entry.leaf for name, entry in self._entries.items()}.items()

    def get_all_param_names(self):
        warnings.warn(
            "ParamStoreDict.get_all_param_names() is deprecated; use .keys() instead.",
            DeprecationWarning,
        )
        return self.keys()

    def replace_param(
        self, param_name: str, new_param: torch.Tensor, old_param: torch.Tensor
    ) -> None:
        """Deprecated (Pyro): ``store[param_name] = new_param``, checking ``old_param``."""
        warnings.warn(
            "ParamStoreDict.replace_param() is deprecated; use store[name] = value instead.",
            DeprecationWarning,
        )
        leaf = self.unconstrained(param_name)
        ref = getattr(old_param, "unconstrained", None)
        if old_param is not leaf and not (callable(ref) and ref() is leaf):
            raise ValueError(f"replace_param: old_param is not the current value of {param_name!r}")
        self[param_name] = new_param

    @property
    def _params(self) -> "UnconstrainedParams":
        """Read-only ``{name: unconstrained leaf}`` view, for user code written against
        Pyro's private ``ParamStoreDict._params`` dict (assign through the store instead).

        >>> store = ParamStoreDict()
        >>> _ = store.get_param("s", torch.tensor(1.0), constraints.positive)
        >>> store._params["s"]
        tensor(0., requires_grad=True)
        """
        return UnconstrainedParams(self)

    def param_name(self, p: torch.Tensor) -> Optional[str]:
        """The name of the unconstrained leaf ``p``, or None if ``p`` is not one."""
        return self._name_by_id.get(id(p))

    def unconstrained(self, name: str) -> torch.Tensor:
        """The unconstrained leaf tensor of ``name``."""
        try:
            return self._entries[name].leaf
        except KeyError:
            raise KeyError(f"param {name!r} is not in the param store") from None

    def leaves(self, names) -> Tuple[Optional[torch.Tensor], ...]:
        """The unconstrained leaves of ``names`` (None for a name not in the store).

        Compiled functions compare this with the leaves they were built on: a param that
        was replaced or removed since then gives another tuple.
        """
        entries = self._entries
        return tuple(None if (e := entries.get(n)) is None else e.leaf for n in names)

    def transform(self, name: str) -> Optional[Transform]:
        """The map from ``name``'s leaf to its constrained value (None: the identity)."""
        try:
            return self._entries[name].transform
        except KeyError:
            raise KeyError(f"param {name!r} is not in the param store") from None

    def update_(self, name: str, constrained_value: torch.Tensor) -> None:
        """Write a new constrained value into ``name``'s leaf, in place.

        Unlike ``store[name] = value`` (which installs a new leaf, so optimizers and
        compiled graphs start afresh), the leaf keeps its identity: optimizer state and
        compiled graphs that read it stay valid. The value must have the leaf's shape.

        >>> store = ParamStoreDict()
        >>> _ = store.get_param("s", torch.ones(2), constraints.positive)
        >>> leaf = store.unconstrained("s")
        >>> store.update_("s", torch.tensor([2.0, 3.0]))
        >>> store["s"].detach(), store.unconstrained("s") is leaf
        (tensor([2., 3.]), True)
        """
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"param {name!r} is not in the param store")
        value = torch.as_tensor(constrained_value).detach()
        if value.shape != entry.leaf.shape:
            raise ValueError(
                f"update_({name!r}): value has shape {tuple(value.shape)} but the param has "
                f"shape {tuple(entry.leaf.shape)}; use store[{name!r}] = value to replace it "
                "with a param of another shape"
            )
        if is_validation_enabled():
            _check_in_support(name, value, entry.constraint)
        with torch.no_grad():
            unconstrained = value if entry.transform is None else entry.transform.inv(value)
            entry.leaf.copy_(unconstrained)

    def adopt(self, name: str, leaf: torch.Tensor, constraint=constraints.real) -> None:
        """Make the existing unconstrained tensor ``leaf`` the param ``name`` (no copy).

        For owners of their own tensors (``PyroModule`` params), so that the owner and the
        store share one leaf.
        """
        self._install(name, leaf, constraint, _transform_for(name, constraint))

    def constraint(self, name: str) -> constraints.Constraint:
        """The constraint ``name`` was created with."""
        try:
            return self._entries[name].constraint
        except KeyError:
            raise KeyError(f"param {name!r} is not in the param store") from None

    def match(self, name: str) -> Dict[str, torch.Tensor]:
        """Constrained values of the params whose names match regex ``name`` (``re.match``)."""
        pattern = re.compile(name)
        return {n: self._read(e) for n, e in list(self._entries.items()) if pattern.match(n)}

    # ------------------------------------------------------------------ scopes

    @contextmanager
    def scope(self, prefix: Union[str, StateDict, None] = None) -> Iterator[Any]:
        """A name space (``scope("vae")``), or Pyro's swap-in store (``scope()``/``scope(state)``).

        With a string, names passed through :meth:`resolve_name` (as ``pyro.param`` does)
        become ``prefix/name``; scopes nest. It yields the full prefix.

        With ``None`` or a state dict (Pyro's form), the store is emptied (or set to
        ``state``) inside the block, the block's params are written back into the yielded
        state at exit, and the outer params (the very same tensors) come back.

        >>> store = ParamStoreDict()
        >>> with store.scope("model_a"):
        ...     store.get_param(store.resolve_name("w"), torch.zeros(1)).shape
        torch.Size([1])
        >>> list(store.keys())
        ['model_a/w']
        """
        if isinstance(prefix, str):
            if not prefix:
                raise ValueError("scope prefix must be a non-empty string")
            outer = self._prefix
            self._prefix = f"{outer}{prefix}/"
            try:
                yield self._prefix[:-1]
            finally:
                self._prefix = outer
            return
        state = {"params": {}, "constraints": {}} if prefix is None else prefix
        incoming = self._parse_state(state, copy=True)
        outer_entries, outer_ids = self._entries, self._name_by_id
        self._entries, self._name_by_id = {}, {}
        try:
            for args in incoming:
                self._install(*args)
            yield state
            state.update(self.get_state())
        finally:
            self._entries, self._name_by_id = outer_entries, outer_ids

    # ------------------------------------------------------------------ persistence

    def get_state(self) -> StateDict:
        """A snapshot as plain data: ``{"params": {name: tensor}, "constraints": {name: enc}}``.

        Tensors are detached copies of the unconstrained leaves; constraints are encoded
        by :func:`~pyrolite.params.constraint_codec.encode_constraint`. Safe for
        ``torch.save`` / ``torch.load(weights_only=True)``.
        """
        return self._state(copy=True)

    def set_state(self, state: StateDict) -> None:
        """Merge a :meth:`get_state` result into the store (same names are replaced).

        The whole state is checked first; a bad state raises ``ValueError`` and leaves
        the store as it was. Constraints may be encoded or ``Constraint`` objects.
        """
        for args in self._parse_state(state, copy=True):
            self._install(*args, loaded=True)

    def parse_state(self, state: StateDict) -> Dict[str, torch.Tensor]:
        """Check ``state`` as :meth:`set_state` would, changing nothing: the unconstrained
        tensors it would install, by name (what an optimizer's saved state must fit)."""
        return {name: leaf for name, leaf, _, _ in self._parse_state(state, copy=False)}

    def save(self, filename: PathLike) -> None:
        """Write :meth:`get_state` to ``filename`` atomically (temp file, fsync, rename)."""
        save_atomic(self._state(copy=False), filename)

    def load(self, filename: PathLike, map_location: Any = None) -> None:
        """Merge params saved by :meth:`save` into the store (same names are replaced).

        Reads with ``torch.load(weights_only=True)``: no code from the file runs. A
        missing, corrupt or foreign file raises and leaves the store as it was. Files
        saved by Pyro's ``ParamStoreDict.save`` (torch constraints only) load too.
        """
        # Torch's constraint classes are allowed so Pyro-written files load too.
        state = load_weights_only(
            filename,
            map_location,
            expected="a ParamStore state",
            allowed_classes=torch_constraint_classes(),
        )
        try:
            incoming = self._parse_state(state, copy=False)
        except ValueError as e:
            raise ValueError(f"cannot load params from {str(filename)!r}: {e}") from e
        for args in incoming:
            self._install(*args, loaded=True)

    # ------------------------------------------------------------------ internals

    def _read(self, entry: _Entry) -> torch.Tensor:
        if entry.transform is None:
            return entry.leaf
        value = entry.transform(entry.leaf)
        value.unconstrained = entry.ref
        return value

    def _create(self, name: str, init: Optional[InitValue], constraint) -> torch.Tensor:
        if init is None:
            raise KeyError(
                f"param {name!r} does not exist yet, so it needs an init value: pass one, "
                f"e.g. pyro.param({name!r}, torch.zeros(3)) or a zero-argument callable"
            )
        if callable(init) and not isinstance(init, torch.Tensor):
            init = init()
        if constraint is None:
            constraint = constraints.real
        self._install(name, *self._make_leaf(name, init, constraint))
        return self._read(self._entries[name])

    def _make_leaf(
        self, name: str, value: Any, constraint
    ) -> Tuple[torch.Tensor, constraints.Constraint, Optional[Transform]]:
        """The unconstrained leaf for a constrained ``value`` (validated when enabled)."""
        if not isinstance(constraint, constraints.Constraint):
            raise TypeError(
                f"param {name!r}: constraint must be a torch.distributions Constraint, "
                f"got {constraint!r}"
            )
        if not isinstance(value, torch.Tensor):
            if isinstance(value, (bool, int, float, list, tuple)):
                value = torch.as_tensor(value, dtype=torch.get_default_dtype())
            else:
                raise TypeError(
                    f"param {name!r}: init value must be a tensor, got {type(value).__name__}"
                )
        if not (value.is_floating_point() or value.is_complex()):
            raise TypeError(
                f"param {name!r}: init value has dtype {value.dtype}, but a param must be "
                "floating point to have gradients; pass e.g. value.float()"
            )
        if is_validation_enabled():
            _check_in_support(name, value, constraint)
        transform = _transform_for(name, constraint)
        if transform is None and value.is_leaf and value.requires_grad and value.is_contiguous():
            # Adopt a tensor the user already trains (an nn.Parameter from pyro.module),
            # as Pyro does, so the module and the store share one tensor.
            return value, constraint, None
        with torch.no_grad():
            unconstrained = value.detach() if transform is None else transform.inv(value.detach())
        leaf = unconstrained.clone(memory_format=torch.contiguous_format).requires_grad_()
        return leaf, constraint, transform

    def _install(
        self, name: str, leaf: torch.Tensor, constraint, transform, loaded: bool = False
    ) -> None:
        old = self._entries.get(name)
        if old is not None:
            self._name_by_id.pop(id(old.leaf), None)
        self._installs += 1
        entry = _Entry(leaf, constraint, transform, loaded)
        if transform is None:
            leaf.unconstrained = entry.ref
        self._entries[name] = entry
        self._name_by_id[id(leaf)] = name

    def _raise_reshaped(self, name: str, entry: _Entry, init: torch.Tensor) -> None:
        where = "loaded from a checkpoint" if entry.loaded else "created earlier"
        leaf = entry.leaf
        shape = "?" if entry.shape is None else tuple(entry.shape)
        raise ValueError(
            f"param {name!r} has shape {shape}, dtype {leaf.dtype} on {leaf.device} ({where}) "
            f"but is now declared with an init value of shape {tuple(init.shape)}, dtype "
            f"{init.dtype} on {init.device}; a param keeps its shape, dtype and device. "
            f"To replace it, delete it first (del pyro.get_param_store()[{name!r}]) or "
            f"assign the new value (pyro.get_param_store()[{name!r}] = value); if it came "
            "from a checkpoint, the checkpoint is from another model."
        )

    def _bind_loaded(self, name: str, entry: _Entry, init: torch.Tensor) -> Optional[torch.Tensor]:
        """Make a module's own ``nn.Parameter`` the param, holding the loaded values."""
        leaf = entry.leaf
        if not (
            isinstance(init, torch.nn.Parameter)
            and entry.transform is None
            and init.is_leaf
            and init.is_contiguous()
            and init.dtype == leaf.dtype
            and init.device == leaf.device
        ):
            return None
        with torch.no_grad():
            init.copy_(leaf)
        self._install(name, init, entry.constraint, None)
        return init

    def _check_redeclared(self, name: str, stored, requested) -> None:
        if constraints_equal(stored, requested):
            return
        raise ValueError(
            f"param {name!r} was created with constraint {describe_constraint(stored)} but is "
            f"now declared with {describe_constraint(requested)}; a param keeps its "
            f"constraint. Pass the same constraint (or none), or delete the param first "
            f"(del pyro.get_param_store()[{name!r}]) to recreate it."
        )

    def _state(self, copy: bool) -> StateDict:
        params, encoded = {}, {}
        for name, entry in self._entries.items():
            try:
                encoded[name] = encode_constraint(entry.constraint)
            except ValueError as e:
                raise ValueError(f"cannot save param {name!r}: {e}") from e
            leaf = entry.leaf.detach()
            params[name] = leaf.clone() if copy else leaf
        return {"params": params, "constraints": encoded}

    def _parse_state(self, state: Any, copy: bool) -> List[Tuple[str, torch.Tensor, Any, Any]]:
        """Check a whole state and build its leaves, touching nothing in the store."""
        if not isinstance(state, dict):
            raise ValueError(
                "expected a ParamStore state {'params': {...}, 'constraints': {...}}, "
                f"got {type(state).__name__}"
            )
        if set(state) != {"params", "constraints"}:
            raise ValueError(
                "expected a ParamStore state with keys ['constraints', 'params'], "
                f"got keys {sorted(map(str, state))}"
            )
        params, encoded = state["params"], state["constraints"]
        if not isinstance(params, dict) or not isinstance(encoded, dict):
            raise ValueError("state['params'] and state['constraints'] must both be dicts")
        stray = [n for n in encoded if n not in params]
        if stray:
            raise ValueError(f"state has constraints for params it does not hold: {stray}")
        parsed = []
        for name, tensor in params.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"param names must be non-empty strings, got {name!r}")
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"param {name!r}: expected a tensor, got {type(tensor).__name__}")
            if not (tensor.is_floating_point() or tensor.is_complex()):
                raise ValueError(f"param {name!r}: expected a floating tensor, got {tensor.dtype}")
            if tensor.layout != torch.strided or tensor.device.type == "meta":
                raise ValueError(
                    f"param {name!r}: expected a dense tensor with data, got layout "
                    f"{tensor.layout} on device {tensor.device}"
                )
            try:
                constraint = decode_constraint(encoded.get(name, constraints.real))
            except ValueError as e:
                raise ValueError(f"param {name!r}: {e}") from e
            transform = _transform_for(name, constraint)
            if transform is not None:
                try:
                    with torch.no_grad():
                        transform(tensor)
                except Exception as e:
                    raise ValueError(
                        f"param {name!r}: a tensor of shape {tuple(tensor.shape)} does not fit "
                        f"{describe_constraint(constraint)} ({e})"
                    ) from e
            parsed.append((name, tensor, constraint, transform))
        return [
            (name, _fresh_leaf(tensor, copy), constraint, transform)
            for name, tensor, constraint, transform in parsed
        ]


class UnconstrainedParams(Mapping):
    """A live, read-only mapping of a store's param names to their unconstrained leaves."""

    __slots__ = ("_store",)

    def __init__(self, store: ParamStoreDict) -> None:
        self._store = store

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._store.unconstrained(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store._entries)

    def __len__(self) -> int:
        return len(self._store._entries)

    def __repr__(self) -> str:
        return f"UnconstrainedParams({list(self)!r})"


def _constrained_shape(leaf: torch.Tensor, transform: Optional[Transform]):
    if transform is None:
        return leaf.shape
    try:
        return torch.Size(transform.forward_shape(leaf.shape))
    except Exception:  # noqa: BLE001 - a transform that cannot tell is not checked
        return None


def _fresh_leaf(tensor: torch.Tensor, copy: bool) -> torch.Tensor:
    tensor = tensor.detach()
    if copy:
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    return tensor.contiguous().requires_grad_()


def _is_identity(transform: Transform) -> bool:
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    return isinstance(transform, ComposeTransform) and not transform.parts


def _transform_for(name: str, constraint) -> Optional[Transform]:
    """``transform_to(constraint)``, or None for the identity (the leaf is the value)."""
    try:
        transform = transform_to(constraint)
    except NotImplementedError as e:
        raise ValueError(
            f"param {name!r}: no transform to {describe_constraint(constraint)} is known, so "
            "it cannot be a param constraint (discrete constraints cannot be learned)"
        ) from e
    if _is_identity(transform):
        return None
    if isinstance(transform, ComposeTransform):
        # torch maps positive to exp then x * 1 + 0; drop such no-op affine steps, an
        # extra tensor op on every read of every positive param.
        parts = [t for t in transform.parts if not _is_noop_affine(t)]
        if len(parts) == 1:
            return parts[0]
        if len(parts) < len(transform.parts):
            return ComposeTransform(parts)
    return transform


def _is_noop_affine(transform: Transform) -> bool:
    return (
        isinstance(transform, AffineTransform)
        and not isinstance(transform.loc, torch.Tensor)
        and not isinstance(transform.scale, torch.Tensor)
        and transform.loc == 0
        and transform.scale == 1
    )


def _check_in_support(name: str, value: torch.Tensor, constraint) -> None:
    try:
        ok = torch.as_tensor(constraint.check(value))
    except Exception as e:
        raise ValueError(
            f"param {name!r}: cannot check an init value of shape {tuple(value.shape)} against "
            f"{describe_constraint(constraint)}: {e}"
        ) from e
    if bool(ok.all()):
        return
    index = tuple((~ok).nonzero()[0].tolist())
    offending = value[index] if index else value
    shown = _format_values(offending.detach().cpu().tolist())
    if len(shown) > 200:
        shown = shown[:200] + "..."
    where = f" at index {list(index)}" if index else ""
    raise ValueError(
        f"param {name!r}: init value violates {describe_constraint(constraint)}: "
        f"{int((~ok).sum())} of {ok.numel()} entries are outside it, e.g. {shown}{where}. "
        "Pass an init value inside the constraint's support (the init is the constrained "
        "value, e.g. a scale, not its log), or declare the constraint that matches it."
    )


def _format_values(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_format_values(v) for v in values) + "]"
    return f"{values:.6g}"


# used to create fully-formed param names, e.g. "mymodule$$$mysubmodule.weight"
_MODULE_NAMESPACE_DIVIDER = "$$$"


def param_with_module_name(pyro_name: str, param_name: str) -> str:
    """The store name of ``param_name`` in module ``pyro_name``.

    >>> param_with_module_name("encoder", "fc.weight")
    'encoder$$$fc.weight'
    """
    return f"{pyro_name}{_MODULE_NAMESPACE_DIVIDER}{param_name}"


def module_from_param_with_module_name(param_name: str) -> str:
    """The module part of a store name.

    >>> module_from_param_with_module_name("encoder$$$fc.weight")
    'encoder'
    """
    return param_name.split(_MODULE_NAMESPACE_DIVIDER)[0]


def user_param_name(param_name: str) -> str:
    """The module-local part of a store name (the name itself if it has no module).

    >>> user_param_name("encoder$$$fc.weight"), user_param_name("loc")
    ('fc.weight', 'loc')
    """
    if _MODULE_NAMESPACE_DIVIDER in param_name:
        return param_name.split(_MODULE_NAMESPACE_DIVIDER)[1]
    return param_name


def normalize_param_name(name: str) -> str:
    """A store name with the module divider replaced by ``"."``.

    >>> normalize_param_name("encoder$$$fc.weight")
    'encoder.fc.weight'
    """
    return name.replace(_MODULE_NAMESPACE_DIVIDER, ".")


_PARAM_STORE = ParamStoreDict()


def get_param_store() -> ParamStoreDict:
    """The global param store that ``pyro.param`` reads and writes."""
    return _PARAM_STORE


def clear_param_store() -> None:
    """Remove every param from the global store."""
    _PARAM_STORE.clear()
