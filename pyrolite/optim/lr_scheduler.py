"""``PyroLRScheduler``: a ``PyroOptim`` whose learning rates follow a torch LR scheduler.

As in Pyro, each parameter's schedule starts when the parameter is first seen: the parameters
that first appear in the same step with equal arguments share one torch optimizer and one
scheduler ("a slot"); a parameter appearing later gets a fresh slot with the initial rate.
"""

from typing import Any, Callable, Dict, Hashable, List, Optional

from torch.optim import Optimizer

from pyrolite.optim.optim import (
    ArgsOrFn,
    PyroOptim,
    _Arrival,
    _check_optimizer_state,
    _freeze,
    _snapshot,
)


class PyroLRScheduler(PyroOptim):
    """Wraps a ``torch.optim.lr_scheduler`` class for ParamStore parameters.

    :param scheduler_constructor: e.g. ``torch.optim.lr_scheduler.StepLR``.
    :param optim_args: a dict with ``'optimizer'`` (a ``torch.optim.Optimizer`` class),
        ``'optim_args'`` (its arguments: a dict or a per-parameter callable, as for
        :class:`~pyrolite.optim.PyroOptim`) and the scheduler's own keyword arguments.
    :param clip_args: gradient clipping arguments, as for :class:`~pyrolite.optim.PyroOptim`.

    Calling it on parameters takes an optimizer step; :meth:`step` advances the schedules
    (pass the metric for ``ReduceLROnPlateau``).

    >>> import torch
    >>> w = torch.zeros(1, requires_grad=True)
    >>> scheduler = PyroLRScheduler(
    ...     torch.optim.lr_scheduler.ExponentialLR,
    ...     {"optimizer": torch.optim.SGD, "optim_args": {"lr": 1.0}, "gamma": 0.5},
    ... )
    >>> for _ in range(3):
    ...     w.grad = torch.ones(1)
    ...     scheduler([w])
    ...     scheduler.step()
    >>> w.detach()  # steps of 1.0, 0.5 and 0.25
    tensor([-1.7500])
    """

    def __init__(
        self,
        scheduler_constructor: Callable[..., Any],
        optim_args: Dict[str, Any],
        clip_args: Optional[ArgsOrFn] = None,
    ) -> None:
        if not isinstance(optim_args, dict) or "optimizer" not in optim_args:
            raise ValueError(
                "PyroLRScheduler needs optim_args={'optimizer': <torch.optim class>, "
                "'optim_args': {...}, **scheduler_kwargs}, got " + repr(optim_args)
            )
        kwargs = dict(optim_args)
        optimizer_constructor = kwargs.pop("optimizer")
        optimizer_args = kwargs.pop("optim_args", {})
        self.pt_scheduler_constructor = scheduler_constructor
        self.kwargs = kwargs
        self._scheduler_of: Dict[Optimizer, Any] = {}
        super().__init__(optimizer_constructor, optimizer_args, clip_args)

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Advance every parameter's schedule one step (``args`` go to ``scheduler.step``)."""
        for scheduler in self._scheduler_of.values():
            scheduler.step(*args, **kwargs)

    def _restore_into(self, arrival: _Arrival, saved: Dict[str, Any]) -> None:
        arrival.settings, arrival.state = self._cast_optimizer_state(arrival, saved["optimizer"])
        arrival.extra = saved["scheduler"]

    def _place(self, arrivals: List[_Arrival]) -> None:
        # Parameters that arrive together with equal arguments and equal restored state can
        # share a slot; their schedule is the same.
        slots: Dict[Hashable, List[_Arrival]] = {}
        for a in arrivals:
            key = (a.args_key, _freeze(a.settings), _freeze(a.extra))
            if self._one_optimizer_per_param:
                key = (key, id(a.param))
            slots.setdefault(key, []).append(a)
        for members in slots.values():
            first = members[0]
            params = [a.param for a in members]
            optimizer = self.pt_optim_constructor([{"params": params}], **first.args)
            scheduler = self.pt_scheduler_constructor(optimizer, **self.kwargs)
            group = optimizer.param_groups[0]
            if first.settings is not None:
                group.update(first.settings)
            for a in members:
                if a.state is not None:
                    optimizer.state[a.param] = a.state
                self._optimizer_of[a.param] = optimizer
                self._group_of[a.param] = group
            if first.extra is not None:
                scheduler.load_state_dict(_snapshot(first.extra))
            self._scheduler_of[optimizer] = scheduler

    @staticmethod
    def _torch_state(entry: Dict[str, Any]) -> Dict[str, Any]:
        return entry["optimizer"]

    def _param_state(self, param) -> Dict[str, Any]:
        optimizer = self._optimizer_of[param]
        return {
            "optimizer": super()._param_state(param),
            "scheduler": _snapshot(self._scheduler_of[optimizer].state_dict()),
        }

    def _check_entry(self, name: str, entry: Any) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("scheduler"), dict):
            raise ValueError(
                f"invalid scheduler state for param {name!r}: expected a dict with "
                "'optimizer' and 'scheduler' state_dicts (was it saved by a plain PyroOptim?)"
            )
        _check_optimizer_state(name, entry.get("optimizer"))

    def _drop_optimizer(self, optimizer: Optimizer) -> None:
        self._scheduler_of.pop(optimizer, None)
