"""ProjectedNormal: the direction of an isotropic normal vector, a reparameterizable
distribution on the unit sphere."""

import math
from typing import Optional

import torch

from pyrolite.distributions import constraints
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample

# Below -switch (by power) the float32 forward recursion would lose more than ~2e-5 nats to
# cancellation (its error grows like |t| ** (2 * power)); float64 holds to t = -2 for any
# power shown in practice, and float16/bfloat16 always take the float64 path below -2.
_FLOAT32_SWITCH = {0: 4.0, 1: 4.0, 2: 2.5}
# Down to t = -20 unscaled float64 neither underflows (exp(-200)) nor loses more than
# 20 ** (2 * power) ulps, under 1e-8 for power <= 3.
_FLOAT64_UNDERFLOW = 20.0


def _radial_moment_recursion(t, m_0, m_1, power):
    m_prev, m = m_0, m_1
    if power == 0:
        return m_0
    for k in range(2, power + 1):
        m_prev, m = m, t * m + (k - 1) * m_prev
    return m


def _log_radial_moment(t: torch.Tensor, power: int) -> torch.Tensor:
    """``log(integral_0^inf r**power * exp(-(r - t)**2 / 2) dr)``.

    The integrals ``n_k`` obey ``n_k = t n_{k-1} + (k - 1) n_{k-2}`` (integration by parts)
    from ``n_0 = sqrt(2 pi) Phi(t)`` and ``n_1 = exp(-t**2 / 2) + t n_0``. For negative
    ``t`` the recursion cancels: it runs in the input's dtype while every ``t`` is above
    the dtype's switch point, else in float64 on the whole tensor (one pass costs less than
    splitting it) while ``t > -20``; beyond that the few far entries run in float64 scaled
    by ``exp(t**2 / 2)`` (``erfcx`` replacing ``Phi``), where ``n_0`` would underflow.
    """
    switch = _FLOAT32_SWITCH.get(power, 2.0) if t.dtype == torch.float32 else 2.0
    lowest = float(t.detach().min()) if t.numel() else 0.0
    if lowest >= -switch:
        return _unscaled_log_radial_moment(t, power)
    if power <= 3 and lowest > -_FLOAT64_UNDERFLOW:
        return _unscaled_log_radial_moment(t.double(), power).to(t.dtype)
    far = t < -switch
    result = _unscaled_log_radial_moment(torch.where(far, 0.0, t), power)
    t64 = t[far].double()
    m_0 = math.sqrt(math.pi / 2) * torch.special.erfcx(t64 * -math.sqrt(0.5))
    m = _radial_moment_recursion(t64, m_0, 1 + t64 * m_0, power)
    far_result = m.log() - 0.5 * t64 * t64
    return result.masked_scatter(far, far_result.to(t.dtype))


def _unscaled_log_radial_moment(t: torch.Tensor, power: int) -> torch.Tensor:
    n_0 = math.sqrt(math.pi / 2) * torch.special.erfc(t * -math.sqrt(0.5))
    n_1 = torch.exp(-0.5 * t * t) + t * n_0
    return _radial_moment_recursion(t, n_0, n_1, power).log()


class ProjectedNormal(TorchDistribution):
    """The direction ``x / |x|`` of ``x ~ Normal(concentration, I)``: its mean direction is
    that of ``concentration`` and its concentration grows with ``|concentration|``.

    ``rsample`` is reparameterized; ``log_prob`` is exact in every dimension (the radial
    integral has a closed form).

    >>> d = ProjectedNormal(torch.tensor([0.0, 0.0, 2.0]))
    >>> d.rsample((4,)).shape, round(float(d.log_prob(torch.tensor([0.0, 0.0, 1.0]))), 4)
    (torch.Size([4, 3]), -0.2296)
    """

    arg_constraints = {"concentration": constraints.real_vector}
    support = constraints.sphere
    has_rsample = True

    def __init__(self, concentration: torch.Tensor, *, validate_args: Optional[bool] = None):
        if concentration.dim() < 1:
            raise ValueError(
                f"ProjectedNormal: concentration must have an event dim, got shape "
                f"{tuple(concentration.shape)}; pass a vector such as torch.zeros(3)."
            )
        self.concentration = concentration
        super().__init__(
            concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args
        )

    @staticmethod
    def infer_shapes(concentration):
        return concentration[:-1], concentration[-1:]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(ProjectedNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        super(ProjectedNormal, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    @property
    def mean(self) -> torch.Tensor:
        """The normalized ``concentration`` (the mean direction, as Pyro defines it)."""
        return self.concentration / self.concentration.norm(dim=-1, keepdim=True)

    @property
    def mode(self) -> torch.Tensor:
        return self.mean

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        x = self.concentration + torch.randn(
            shape, dtype=self.concentration.dtype, device=self.concentration.device
        )
        return x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # Integrating the normal density along the ray r * value, r > 0.
        dim = self.event_shape[0]
        c = self.concentration
        # One kernel for c . x when c is a single vector.
        t = value @ c if c.dim() == 1 else (c * value).sum(-1)
        squared_norm = (c * c).sum(-1)
        constant = 0.5 * squared_norm + 0.5 * dim * math.log(2 * math.pi)
        return _log_radial_moment(t, dim - 1) + 0.5 * t * t - constant
