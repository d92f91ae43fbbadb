"""``Distribution``: Pyro's abstract base of every distribution, torch-backed or not.

A user family that subclasses it (``HashingMarginal``-style: ``sample`` and ``log_prob``,
perhaps ``enumerate_support``) works in ``pyrolite.sample`` and is callable, ``d()``
drawing a sample, as in Pyro. pyrolite's torch-backed families inherit from it through
:class:`~pyrolite.distributions.torch_distribution.TorchDistributionMixin`; torch's own
classes do not (``isinstance(torch.distributions.Normal(0, 1), Distribution)`` is False).
"""

import inspect

import torch

from pyrolite.distributions.score_parts import ScoreParts

# Key under which a forced ``has_rsample`` is kept for classes whose torch ``has_rsample``
# is a read-only property (Independent, TransformedDistribution and its subclasses).
FORCED_HAS_RSAMPLE_KEY = "_forced_has_rsample"


class ForceableHasRsample(property):
    """A ``has_rsample`` property that ``has_rsample_`` may override per instance."""

    def __init__(self, natural_fget):
        self.natural = natural_fget

        def fget(d):
            forced = d.__dict__.get(FORCED_HAS_RSAMPLE_KEY)
            return natural_fget(d) if forced is None else forced

        def fset(d, value):
            d.__dict__[FORCED_HAS_RSAMPLE_KEY] = value

        super().__init__(fget, fset, doc="Whether samples are pathwise differentiable.")


def natural_has_rsample(d) -> bool:
    """``d``'s class's own ``has_rsample``, ignoring a ``has_rsample_`` override."""
    attr = inspect.getattr_static(type(d), "has_rsample")
    if isinstance(attr, ForceableHasRsample):
        return bool(attr.natural(d))
    if isinstance(attr, property):
        return bool(attr.fget(d))
    return bool(attr)


class Distribution:
    """Base class of parameterized probability distributions.

    Subclasses implement ``sample`` and ``log_prob`` (and ``enumerate_support`` with
    ``has_enumerate_support = True`` for a discrete family that can be enumerated). This
    class defines none of the three: pyrolite's compact families put it before torch's
    class in their MRO, where a default would hide torch's implementation. A subclass
    that is not torch-backed gets ``has_rsample = has_enumerate_support = False`` unless it
    sets them.

    >>> class Coin(Distribution):
    ...     def __init__(self, p):
    ...         self.p = torch.as_tensor(p)
    ...     def sample(self, sample_shape=torch.Size()):
    ...         return torch.bernoulli(self.p.expand(sample_shape))
    ...     def log_prob(self, x):
    ...         return torch.where(x == 1, self.p.log(), (1 - self.p).log())
    >>> Coin(1.0)()
    tensor(1.)
    """

    # Set on TorchDistributionMixin: its subclasses take these attributes from torch.
    backed_by_torch = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Pyro's defaults, for user families only: as class attributes of this base they
        # would hide torch's (``Normal.has_rsample``) in the compact families, whose MRO puts
        # this class before torch's.
        if cls.backed_by_torch or issubclass(cls, torch.distributions.Distribution):
            return
        for name in ("has_rsample", "has_enumerate_support"):
            if not hasattr(cls, name):
                setattr(cls, name, False)

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        """Draw a sample: ``rsample`` when ``has_rsample`` is True, else ``sample``."""
        if self.has_rsample:
            return self.rsample(*args, **kwargs)
        return self.sample(*args, **kwargs)

    def score_parts(self, x: torch.Tensor, *args, **kwargs) -> ScoreParts:
        """Split ``log_prob(x)`` into the terms a gradient estimator differentiates.

        >>> from pyrolite.distributions.testing.fakes import NonreparameterizedNormal
        >>> NonreparameterizedNormal(0.0, 1.0).score_parts(torch.tensor(0.0)).entropy_term
        0
        """
        log_prob = self.log_prob(x, *args, **kwargs)
        if self.has_rsample:
            return ScoreParts(log_prob=log_prob, score_function=0, entropy_term=log_prob)
        return ScoreParts(log_prob=log_prob, score_function=log_prob, entropy_term=0)

    def conjugate_update(self, other):
        """``(updated, log_normalizer)`` with ``updated.log_prob(x) + log_normalizer ==
        self.log_prob(x) + other.log_prob(x)``, for families that have a conjugate update."""
        raise NotImplementedError(f"{type(self).__name__} has no conjugate_update")

    def has_rsample_(self, value: bool) -> "Distribution":
        """Force reparameterized (True) or detached (False) sampling on this instance, in place.

        Returns ``self``, as Pyro does. Forcing True on a distribution without ``rsample``
        raises ValueError.

        >>> import pyrolite.distributions as dist
        >>> loc = torch.tensor(0.0, requires_grad=True)
        >>> dist.Normal(loc, 1.0).has_rsample_(False)().requires_grad
        False
        """
        if value is not True and value is not False:
            raise ValueError(f"has_rsample_ expects True or False, got {value!r}")
        if value and not natural_has_rsample(self):
            raise ValueError(
                f"{type(self).__name__} has no reparameterized sampler, so has_rsample_(True) "
                "cannot be honoured; use a reparameterizable family or leave it as is."
            )
        self.has_rsample = value
        return self
