"""``named`` (``pyro.contrib.autoname.named``): containers that know their own address, so
``state.z.sample_(d)`` is ``pyrolite.sample("state.z", d)`` and the value takes the
placeholder's place (``state.xs[0]``, ``state.d['k']`` likewise)."""

from typing import Any, Hashable, Optional

import pyrolite


def _is_dunder(key: str) -> bool:
    return key.startswith("__") and key.endswith("__")


class Object:
    """A write-once namespace whose missing attributes are placeholders named ``parent.key``;
    a placeholder turns into a tensor with ``.sample_(fn, ...)`` or ``.param_(init, ...)``.

    :param name: the address of this object (the prefix of every site below it).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> def model():
    ...     state = Object("state")
    ...     loc = state.loc.param_(torch.zeros(1))
    ...     state.z.sample_(dist.Normal(loc, 1.0))
    ...     return state
    >>> [n for n in poutine.trace(model).get_trace().nodes if not n.startswith("_")]
    ['state.loc', 'state.z']
    >>> str(Object("state").x.y)
    'state.x.y'
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_is_placeholder", True)
        # Where the drawn value goes: set only for placeholders made by a container.
        object.__setattr__(self, "_owner", None)

    def __str__(self) -> str:
        return self._name

    def __getattr__(self, key: str) -> "Object":
        # Only missing attributes get here; dunders stay missing so that copy, pickle and
        # torch's protocol probes see an ordinary object.
        if _is_dunder(key):
            raise AttributeError(key)
        child = Object(f"{self}.{key}")
        object.__setattr__(child, "_owner", (self, key))
        setattr(self, key, child)
        return child

    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, (List, Dict)):
            value._set_name(f"{self}.{key}")
        old = self.__dict__.get(key)
        if key in self.__dict__ and not (isinstance(old, Object) and old._is_placeholder):
            raise RuntimeError(f"Cannot overwrite {self}.{key}")
        object.__setattr__(self, key, value)
        object.__setattr__(self, "_is_placeholder", False)

    def _check_owner(self, verb: str) -> None:
        if not self._is_placeholder:
            raise RuntimeError(f"Cannot .{verb} an initialized named.Object {self}")
        if self._owner is None:
            raise TypeError(
                f"Cannot .{verb} the named.Object {self}: it was not made by a container. "
                f"Use an attribute of it (e.g. {self}.x.{verb}(...)), a named.List's .add() "
                "or a named.Dict's item."
            )

    def _set_value(self, value: Any) -> None:
        owner, key = self._owner
        if isinstance(owner, Object):
            object.__setattr__(owner, key, value)
        else:
            owner._replace(key, value)

    def sample_(self, fn, *args, **kwargs):
        """``pyrolite.sample(str(self), fn, *args, **kwargs)``; the value replaces this
        placeholder in its container and is returned."""
        self._check_owner("sample_")
        value = pyrolite.sample(str(self), fn, *args, **kwargs)
        self._set_value(value)
        return value

    def param_(self, *args, **kwargs):
        """``pyrolite.param(str(self), *args, **kwargs)``; the value replaces this
        placeholder in its container and is returned."""
        self._check_owner("param_")
        value = pyrolite.param(str(self), *args, **kwargs)
        self._set_value(value)
        return value


class List(list):
    """A write-once list of ``named.Object`` placeholders named ``name[i]``; give it a name or
    store it in a ``named.Object`` (which names it ``parent.key``) before ``.add()``.

    :param name: the address of the list (optional until it is stored in an Object).

    >>> xs = List("xs")
    >>> str(xs.add()), str(xs.add()), len(xs)
    ('xs[0]', 'xs[1]', 2)
    """

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__()
        self._name = name

    def __str__(self) -> str:
        return str(self._name)

    def _set_name(self, name: str) -> None:
        if self._name is not None:
            raise RuntimeError(f"Cannot rename named.List: {self._name}")
        self._name = name

    def _replace(self, index: int, value: Any) -> None:
        list.__setitem__(self, index, value)

    def add(self) -> Object:
        """Append one new named.Object and return it.

        :returns: a new latent object at the end
        """
        if self._name is None:
            raise RuntimeError("Cannot .add() to a named.List before storing it in a named.Object")
        index = len(self)
        child = Object(f"{self}[{index}]")
        object.__setattr__(child, "_owner", (self, index))
        self.append(child)
        return child


class Dict(dict):
    """A write-once dict whose missing items are ``named.Object`` placeholders named
    ``name[key!r]``; give it a name or store it in a ``named.Object`` before use.

    :param name: the address of the dict (optional until it is stored in an Object).

    >>> ys = Dict("ys")
    >>> str(ys["foo"]), str(ys[1]), ys["foo"] is ys["foo"]
    ("ys['foo']", 'ys[1]', True)
    """

    def __init__(self, name: Optional[str] = None) -> None:
        super().__init__()
        self._name = name

    def __str__(self) -> str:
        return str(self._name)

    def _set_name(self, name: str) -> None:
        if self._name is not None:
            raise RuntimeError(f"Cannot rename named.Dict: {self._name}")
        self._name = name

    def _replace(self, key: Hashable, value: Any) -> None:
        dict.__setitem__(self, key, value)

    def __getitem__(self, key: Hashable) -> Any:
        if self._name is None:
            raise RuntimeError("Cannot access an unnamed named.Dict")
        if key not in self:
            child = Object(f"{self}[{key!r}]")
            object.__setattr__(child, "_owner", (self, key))
            dict.__setitem__(self, key, child)
        return dict.__getitem__(self, key)
