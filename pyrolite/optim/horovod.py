"""``HorovodOptimizer``: Pyro's name for a Horovod-distributed ``PyroOptim``.

Horovod is not a dependency of pyrolite; this module only gives a clear error and points to
pyrolite's own data-parallel SVI.
"""

from typing import Any

from pyrolite.optim.optim import PyroOptim


class HorovodOptimizer(PyroOptim):
    """Distributed wrapper for a :class:`~pyrolite.optim.PyroOptim`, as
    ``horovod.torch.DistributedOptimizer`` wraps a ``torch.optim.Optimizer``.

    :param pyro_optim: the optimizer to distribute.
    :param horovod_kwargs: passed to ``horovod.torch.DistributedOptimizer``.

    pyrolite does not drive Horovod: constructing one raises ``ImportError`` when
    ``horovod.torch`` is absent and ``NotImplementedError`` when it is present. Use
    :class:`pyrolite.infer.DistributedSVI` (``torch.distributed``) for data-parallel SVI.

    >>> import pyrolite.optim as optim
    >>> try:
    ...     HorovodOptimizer(optim.Adam({"lr": 0.1}))
    ... except ImportError as e:
    ...     print("horovod" in str(e) and "DistributedSVI" in str(e))
    True
    """

    def __init__(self, pyro_optim: PyroOptim, **horovod_kwargs: Any) -> None:
        try:
            import horovod.torch  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "HorovodOptimizer needs horovod.torch, which is not installed "
                "(pip install horovod[pytorch]); for data-parallel SVI without Horovod use "
                "pyrolite.infer.DistributedSVI, which runs on torch.distributed"
            ) from error
        raise NotImplementedError(
            "pyrolite does not drive Horovod; use pyrolite.infer.DistributedSVI "
            "(torch.distributed) for data-parallel SVI"
        )
