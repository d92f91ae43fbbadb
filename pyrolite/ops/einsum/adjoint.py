"""Backward passes through einsum contractions (as ``pyro.ops.einsum.adjoint``): after a
forward contraction with the ``torch_sample``, ``torch_map`` or ``torch_marginal``
backend, a backward pass hands each operand that asked for it a sample, a MAP value or a
marginal of its dims.

The protocol, on tensors:

* :func:`require_backward` marks a leaf operand before the forward contraction.
* The backends attach a :class:`Backward` to every result computed from marked operands
  (stored as ``result._pyro_backward``, the attribute name Pyro code uses).
* :func:`backward` (or ``result._pyro_backward()``) runs the pass from a result.
* :func:`backward_result` reads what a leaf received (``leaf._pyro_backward_result``).

Samples are integer tensors whose first dim, named :data:`SAMPLE_SYMBOL` in
``_pyro_dims``, lists the sampled variables (their names in ``_pyro_sample_dims``); the
other dims are batch dims, named as in ``pyrolite.ops.packed``.
"""

import weakref
from abc import ABC, abstractmethod
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple

import torch

from .. import packed

SAMPLE_SYMBOL = " "  # the name of a sample's first dim: which variable each row holds


class Backward(ABC):
    """A step of a backward pass: ``process(message)`` returns the ``(backward, message)``
    pairs to run next; calling the root runs the whole pass (with message ``None``).

    >>> class Print(Backward):
    ...     def process(self, message):
    ...         print("got", message)
    ...         return []
    >>> Print()()
    got None
    """

    def __call__(self) -> None:
        # An explicit stack: contraction trees can be deeper than Python's recursion limit.
        stack = [(self, None)]
        while stack:
            step, message = stack.pop()
            stack.extend(step.process(message))

    @abstractmethod
    def process(self, message) -> Iterable[Tuple["Backward", object]]:
        """The ``(backward, message)`` pairs that this step's operands receive."""


class _LeafBackward(Backward):
    def __init__(self, target: torch.Tensor):
        # A weak reference: the tensor owns this object, not the other way round.
        self.target = weakref.ref(target)

    def process(self, message):
        target = self.target()
        if target is not None:
            target._pyro_backward_result = message
        return []


def require_backward(tensor: torch.Tensor) -> None:
    """Mark ``tensor`` so that a backward pass stores its result on it.

    >>> x = torch.zeros(2); require_backward(x); requires_backward(x)
    True
    """
    tensor._pyro_backward = _LeafBackward(tensor)


def requires_backward(tensor) -> bool:
    """Whether ``tensor`` is marked, or computed from marked operands by a backend."""
    return hasattr(tensor, "_pyro_backward")


def backward(result: torch.Tensor) -> None:
    """Run the backward pass from a contraction's ``result``.

    :raises ValueError: if no operand of ``result`` was marked with :func:`require_backward`
        or the backend does not support backward passes (``torch_log``).
    """
    if not requires_backward(result):
        raise ValueError(
            "backward: this result carries no backward pass; call require_backward(x) on the "
            "operands first and contract with a torch_sample, torch_map or torch_marginal backend"
        )
    result._pyro_backward()


def backward_result(tensor: torch.Tensor):
    """What the last backward pass gave the marked ``tensor`` (None if nothing reached it).

    >>> from pyrolite.ops.einsum import contract
    >>> x = torch.tensor([0.0, 1.0]); x._pyro_dims = "a"; require_backward(x)
    >>> y = contract("a->", x, backend="pyrolite.ops.einsum.torch_map"); backward(y)
    >>> backward_result(x).tolist(), backward_result(x)._pyro_sample_dims
    ([1], 'a')
    """
    return getattr(tensor, "_pyro_backward_result", None)


class _TransposeBackward(Backward):
    def __init__(self, a: torch.Tensor, axes: Sequence[int]):
        self.a, self.axes = a, tuple(axes)

    def process(self, message):
        if message is None:
            return [(self.a._pyro_backward, None)]
        inverse = [0] * len(self.axes)
        for i, axis in enumerate(self.axes):
            inverse[axis] = i
        return [(self.a._pyro_backward, message.permute(inverse))]


def transpose(a: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """``a.permute(axes)``, passing a positional message (a marginal laid out like the
    result) back to ``a`` un-permuted when ``a`` is marked.

    >>> transpose(torch.zeros(2, 3), (1, 0)).shape
    torch.Size([3, 2])
    """
    result = a.permute(axes)
    if requires_backward(a):
        result._pyro_backward = _TransposeBackward(a, axes)
    return result


def unflatten(
    flat_sample: torch.Tensor, output_dims: str, contract_dims: str, contract_shape: Sequence[int]
) -> torch.Tensor:
    """A sample of flat indices into ``contract_shape`` (batch dims ``output_dims``) as one
    row per variable of ``contract_dims``.

    >>> s = unflatten(torch.tensor([5, 3]), "a", "cd", (3, 4))
    >>> s.tolist(), repr(s._pyro_dims), s._pyro_sample_dims
    ([[1, 0], [1, 3]], "' a'", 'cd')
    """
    rows = []
    for size in reversed(contract_shape):
        rows.append(flat_sample % size)
        flat_sample = torch.div(flat_sample, size, rounding_mode="floor")
    sample = torch.stack(rows[::-1])
    sample._pyro_dims = SAMPLE_SYMBOL + output_dims
    sample._pyro_sample_dims = contract_dims
    return sample


def _align_sample(sample: torch.Tensor, batch: str, sizes: dict) -> torch.Tensor:
    """``sample`` with its batch dims permuted and expanded to ``batch``."""
    own = sample._pyro_dims[1:]
    if own == batch:
        return sample
    order = [0] + [1 + i for i in sorted(range(len(own)), key=lambda i: batch.index(own[i]))]
    view = sample.permute(order).reshape(
        (sample.shape[0],) + tuple(sizes[d] if d in own else 1 for d in batch)
    )
    return view.expand((sample.shape[0],) + tuple(sizes[d] for d in batch))


def einsum_backward_sample(
    operands: Sequence[torch.Tensor],
    sample1: Optional[torch.Tensor],
    sample2: Optional[torch.Tensor],
) -> Iterator[Tuple[Backward, Optional[torch.Tensor]]]:
    """Join ``sample1`` (the message received: samples of some output dims) and
    ``sample2`` (samples drawn at this step, of the contracted dims), and give each marked
    operand the rows of the dims it has (``None`` if it has none of them).

    >>> a = torch.zeros(2, 3); a._pyro_dims = "ab"; require_backward(a)
    >>> s = unflatten(torch.tensor([2, 1]), "a", "b", (3,))
    >>> [(m.tolist(), m._pyro_sample_dims) for _, m in einsum_backward_sample([a], None, s)]
    [([[2, 1]], 'b')]
    """
    samples = [s for s in (sample1, sample2) if s is not None]
    if not samples:
        joint = None
    elif len(samples) == 1:
        joint = samples[0]
    else:
        if not set(sample1._pyro_sample_dims).isdisjoint(sample2._pyro_sample_dims):
            raise ValueError(
                f"einsum_backward_sample: both samples hold dims "
                f"{sorted(set(sample1._pyro_sample_dims) & set(sample2._pyro_sample_dims))}"
            )
        batch1, batch2 = sample1._pyro_dims[1:], sample2._pyro_dims[1:]
        batch = batch1 + "".join(d for d in batch2 if d not in batch1)
        sizes = dict(zip(batch1, sample1.shape[1:]))
        sizes.update(zip(batch2, sample2.shape[1:]))
        joint = torch.cat(
            [_align_sample(sample1, batch, sizes), _align_sample(sample2, batch, sizes)]
        )
        joint._pyro_dims = SAMPLE_SYMBOL + batch
        joint._pyro_sample_dims = sample1._pyro_sample_dims + sample2._pyro_sample_dims
    for operand in operands:
        if not requires_backward(operand):
            continue
        if joint is None:
            yield operand._pyro_backward, None
            continue
        rows = [i for i, d in enumerate(joint._pyro_sample_dims) if d in operand._pyro_dims]
        if not rows:
            yield operand._pyro_backward, None
            continue
        message = joint if len(rows) == joint.shape[0] else joint[rows]
        message._pyro_dims = joint._pyro_dims
        message._pyro_sample_dims = "".join(joint._pyro_sample_dims[i] for i in rows)
        yield operand._pyro_backward, message


class _PassBackward(Backward):
    def __init__(self, a: torch.Tensor):
        self.a = a

    def process(self, message):
        return [(self.a._pyro_backward, message)]


def transpose_named(a: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """``a.permute(axes)`` for a packed ``a``: its dim names permuted with it, and a named
    message (a sample) passed back to ``a`` unchanged.

    >>> a = torch.zeros(2, 3); a._pyro_dims = "ab"
    >>> transpose_named(a, (1, 0))._pyro_dims
    'ba'
    """
    result = a.permute(axes)
    result._pyro_dims = "".join(a._pyro_dims[i] for i in axes)
    if requires_backward(a):
        result._pyro_backward = _PassBackward(a)
    return result


def log_joint(terms: Sequence[torch.Tensor], dims: str) -> torch.Tensor:
    """The sum of packed ``terms`` laid out along ``dims`` (every dim of every term): each
    term is viewed with size-1 dims where it lacks one, so only the sum is full-size."""
    total = None
    for term in terms:
        own = term._pyro_dims
        order = sorted(range(len(own)), key=lambda i: dims.index(own[i]))
        sizes = dict(zip(own, term.shape))
        view = term.permute(order).reshape([sizes.get(d, 1) for d in dims])
        total = view if total is None else total + view
    full = total.shape
    sizes = {}
    for term in terms:
        sizes.update(zip(term._pyro_dims, term.shape))
    shape = [sizes[d] for d in dims]
    return total if list(full) == shape else total.expand(shape)


class ChoiceEinsumBackward(Backward):
    """The backward step of a named einsum whose contracted dims are *chosen* jointly:
    ``choose(logits)`` maps log-weights ``(*batch, n)`` to indices ``(*batch,)`` (a draw for
    ``torch_sample``, an argmax for ``torch_map``). Given the message (samples of some
    output dims), each operand is conditioned on them, the contracted dims are chosen given
    the rest, and :func:`einsum_backward_sample` hands the joint sample on.

    >>> a = torch.tensor([0.0, 5.0]); a._pyro_dims = "a"; require_backward(a)
    >>> ChoiceEinsumBackward("", [a], lambda logits: logits.argmax(-1))()
    >>> backward_result(a).tolist()
    [1]
    """

    def __init__(self, output: str, operands: Sequence[torch.Tensor], choose: Callable):
        self.output, self.operands, self.choose = output, tuple(operands), choose

    def process(self, message):
        conditioned = []
        for operand in self.operands:
            term = operand
            if message is not None:
                for k, dim in enumerate(message._pyro_sample_dims):
                    if dim in term._pyro_dims:
                        index = message[k]
                        index._pyro_dims = message._pyro_dims[1:]
                        term = packed.gather(term, index, dim)
            conditioned.append(term)
        dims = set().union(*(t._pyro_dims for t in self.operands))
        contract = "".join(sorted(dims - set(self.output)))
        sample = None
        if contract:
            all_dims = set().union(*(t._pyro_dims for t in conditioned)) - set(contract)
            # Batch dims in the order they arrive: the message's, then this result's.
            order = (message._pyro_dims[1:] if message is not None else "") + self.output
            batch = "".join(dict.fromkeys(d for d in order if d in all_dims))
            batch += "".join(sorted(all_dims - set(batch)))
            joint = log_joint(conditioned, batch + contract).detach()
            batch_shape = joint.shape[: len(batch)]
            flat = self.choose(joint.reshape(batch_shape + (-1,)))
            sample = unflatten(flat, batch, contract, joint.shape[len(batch) :])
        return einsum_backward_sample(self.operands, message, sample)


__all__ = [
    "SAMPLE_SYMBOL",
    "Backward",
    "ChoiceEinsumBackward",
    "backward",
    "backward_result",
    "einsum_backward_sample",
    "log_joint",
    "require_backward",
    "requires_backward",
    "transpose",
    "transpose_named",
    "unflatten",
]
