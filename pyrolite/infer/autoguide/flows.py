"""Normalizing-flow autoguides: a standard Normal over the flat unconstrained latents pushed
through a learned transform. ``AutoNormalizingFlow`` takes any transform factory;
``AutoIAFNormal`` stacks inverse autoregressive flows (``AffineAutoregressive``).
"""

from typing import Callable, List, Optional, Union

from torch.distributions import Transform

from ...distributions.transforms.affine_autoregressive import affine_autoregressive
from ...distributions.transforms.module import ComposeTransformModule
from .continuous import AutoContinuous
from .initialization import init_to_median


class AutoNormalizingFlow(AutoContinuous):
    """A flow guide: ``get_posterior()`` is the standard Normal over the latent vector
    pushed through ``init_transform_fn(latent_dim)``, built on the first call.

    The transform (a ``TransformModule``, or a ``ComposeTransformModule`` of several) is the
    submodule ``transform``, so its params are stored as ``"AutoNormalizingFlow.transform$$$..."``.
    It has no closed-form marginals, so no ``median`` or ``quantiles`` (as in Pyro): use
    ``sample_posterior`` or ``Predictive``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.distributions.transforms.affine_autoregressive import affine_autoregressive
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoNormalizingFlow(model, lambda dim: affine_autoregressive(dim, [4]))
    >>> guide()["z"].shape
    torch.Size([2])
    >>> sorted(pyrolite.get_param_store().keys())[0]
    'AutoNormalizingFlow.transform$$$arn.layers.0.bias'
    """

    def __init__(self, model: Callable, init_transform_fn: Callable[[int], Transform]):
        super().__init__(model)
        self._init_transform_fn = init_transform_fn
        self.transform: Optional[Transform] = None

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.transform = self._init_transform_fn(self.latent_dim)

    def get_transform(self, *args, **kwargs) -> Transform:
        return self.transform

    def _loc_scale(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form marginals (so no median or "
            "quantiles, as in Pyro): use guide.sample_posterior(...) or Predictive"
        )


class AutoIAFNormal(AutoNormalizingFlow):
    """``num_transforms`` inverse autoregressive flows (``affine_autoregressive``) after a
    standard Normal, as in Pyro.

    :param hidden_dim: hidden layer sizes of each flow's ``AutoRegressiveNN`` (an int or a
        list; default ``[3 * latent_dim + 1]``).
    :param init_loc_fn: init strategy of the prototype trace (default ``init_to_median``).
    :param num_transforms: how many flows to stack.
    :param init_transform_kwargs: passed to ``affine_autoregressive`` (e.g. ``stable=True``).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoIAFNormal(model, num_transforms=2)
    >>> guide()["z"].shape
    torch.Size([2])
    >>> [tuple(p.shape) for p in guide.transform[0].parameters()]
    [(7, 2), (7,), (4, 7), (4,)]
    """

    def __init__(
        self,
        model: Callable,
        hidden_dim: Union[int, List[int], None] = None,
        init_loc_fn: Optional[Callable] = None,
        num_transforms: int = 1,
        **init_transform_kwargs,
    ):
        if not isinstance(num_transforms, int) or num_transforms < 1:
            raise ValueError(
                f"AutoIAFNormal: num_transforms must be a positive int, got {num_transforms!r}"
            )
        if isinstance(hidden_dim, int):
            hidden_dim = [hidden_dim]

        def init_transform_fn(dim: int) -> Transform:
            return ComposeTransformModule(
                [
                    affine_autoregressive(dim, hidden_dim, **init_transform_kwargs)
                    for _ in range(num_transforms)
                ]
            )

        super().__init__(model, init_transform_fn)
        self.init_loc_fn = init_to_median if init_loc_fn is None else init_loc_fn
