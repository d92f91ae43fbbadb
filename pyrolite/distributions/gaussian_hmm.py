"""Linear-Gaussian time series: GaussianHMM (Kalman filter), GammaGaussianHMM (its Student-t
scale mixture), GaussianMRF (a chain of joint Gaussian factors), LinearHMM (linear dynamics,
any noise, sampling only) and IndependentHMM (a batch of univariate HMMs as one). Time is
summed out by a pairwise tree over time (``O(log T)`` depth), in :mod:`pyrolite.ops.gaussian`.
"""

from typing import Optional, Sequence, Tuple

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch import Gamma, Independent, MultivariateNormal
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape
from pyrolite.ops.gamma_gaussian import (
    GammaGaussian,
    gamma_to_gamma_gaussian,
    matrix_and_mvn_to_gamma_gaussian,
    sequential_gamma_gaussian_tensordot,
)
from pyrolite.ops.gaussian import (
    Gaussian,
    matrix_and_mvn_to_gaussian,
    matvec,
    mvn_to_gaussian,
    sample_from_precision,
    sequential_gaussian_filter_sample,
    sequential_gaussian_tensordot,
)

Distribution = torch.distributions.Distribution


def _time_shapes(
    name,
    initial_dist,
    transition_matrix,
    transition_dist,
    observation_matrix,
    observation_dist,
    duration,
):
    """``(batch_shape, duration T, time_size)`` of a linear HMM from its parts, where
    ``time_size`` is the parameters' own time size (1 when homogeneous); ValueError naming
    the shapes otherwise."""
    if transition_matrix.dim() < 2 or observation_matrix.dim() < 2:
        raise ValueError(
            f"{name}: transition_matrix {tuple(transition_matrix.shape)} and observation_matrix "
            f"{tuple(observation_matrix.shape)} must be (..., T or 1, hidden_dim, hidden_dim) "
            "and (..., T or 1, hidden_dim, obs_dim)."
        )
    for dist_name, dist in [
        ("initial_dist", initial_dist),
        ("transition_dist", transition_dist),
        ("observation_dist", observation_dist),
    ]:
        if not isinstance(dist, Distribution) or dist.event_dim != 1:
            raise ValueError(
                f"{name}: {dist_name} must be a distribution with one event dim (e.g. a "
                f"MultivariateNormal or Normal(...).to_event(1)), got {dist}."
            )
    hidden_dim = initial_dist.event_shape[0]
    obs_dim = observation_dist.event_shape[0]
    expected = {
        "transition_matrix": (transition_matrix.shape[-2:], (hidden_dim, hidden_dim)),
        "transition_dist.event_shape": (transition_dist.event_shape, (hidden_dim,)),
        "observation_matrix": (observation_matrix.shape[-2:], (hidden_dim, obs_dim)),
    }
    for part, (got, want) in expected.items():
        if tuple(got) != want:
            raise ValueError(
                f"{name}: {part} ends in {tuple(got)}, expected {want} (hidden_dim "
                f"{hidden_dim} from initial_dist, obs_dim {obs_dim} from observation_dist)."
            )
    time_shapes = [
        transition_matrix.shape[:-2],
        transition_dist.batch_shape,
        observation_matrix.shape[:-2],
        observation_dist.batch_shape,
    ]
    try:
        time_size = broadcast_shape(*(s[-1:] for s in time_shapes), (1,))[0]
        batch_shape = broadcast_shape(initial_dist.batch_shape, *(s[:-1] for s in time_shapes))
    except ValueError:
        raise ValueError(
            f"{name}: the shapes transition_matrix {tuple(transition_matrix.shape)}, "
            f"transition_dist.batch_shape {tuple(transition_dist.batch_shape)}, "
            f"observation_matrix {tuple(observation_matrix.shape)} and "
            f"observation_dist.batch_shape {tuple(observation_dist.batch_shape)} do not "
            "broadcast: their time dims (the rightmost batch dim) must be equal or 1, and "
            f"their dims left of time must broadcast with initial_dist.batch_shape "
            f"{tuple(initial_dist.batch_shape)}."
        ) from None
    return batch_shape, _duration(name, time_size, duration), time_size


def _duration(name: str, time_size: int, duration: Optional[int]) -> int:
    if duration is None:
        return time_size
    if time_size != 1 and duration != time_size:
        raise ValueError(
            f"{name}: duration={duration} but the parameters have {time_size} time steps; "
            f"pass duration={time_size} or leave it None."
        )
    return duration


def _with_time(factor):
    """Give a factor an explicit (size-1) time dim when its batch shape is empty."""
    return factor.expand(broadcast_shape(factor.batch_shape, (1,)))


class _LinearChain(TorchDistribution):
    """What the chain-structured families share: event ``(T, obs_dim)`` with time on the left,
    a ``duration`` and the check of a value's shape (any length when T is 1)."""

    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)

    @property
    def duration(self) -> Optional[int]:
        """The number of time steps, or None for a homogeneous chain of unknown length."""
        return self._duration

    def _validate_sample(self, value: torch.Tensor) -> None:
        steps, obs_dim = self.event_shape
        fits = (
            value.dim() >= 2
            and value.size(-1) == obs_dim
            and (steps == 1 or value.size(-2) == steps)
        )
        if fits:
            try:
                broadcast_shape(value.shape[:-2], self.batch_shape)
            except ValueError:
                fits = False
        if not fits:
            raise ValueError(
                f"{type(self).__name__}: value of shape {tuple(value.shape)} does not fit "
                f"batch_shape {tuple(self.batch_shape)} + event_shape "
                f"{tuple(self.event_shape)}: expected (..., T, {obs_dim}) with T = {steps} "
                "(any T when event_shape[0] is 1) and leading dims that broadcast with "
                "batch_shape."
            )
        if not bool(self.support.check(value).all()):
            raise ValueError(
                f"{type(self).__name__}: value of shape {tuple(value.shape)} is outside the "
                f"support {self.support} (it holds nan)."
            )

    def _need_duration(self, method: str) -> int:
        if self._duration is None:
            raise ValueError(
                f"{type(self).__name__}.{method}: this chain is homogeneous in time and its "
                "length is unknown. Fix: pass duration=T (or give a parameter a time dim of "
                "size T)."
            )
        return self._duration


def _chain_logsumexp(init: Gaussian, steps: Gaussian) -> torch.Tensor:
    """``log`` of the integral of ``init(z[-1]) prod_t steps[t](z[t-1], z[t])`` over all z."""
    hidden_dim = init.dim()
    return (
        sequential_gaussian_tensordot(steps) + init.event_pad(right=hidden_dim)
    ).event_logsumexp()


def _chain_final(init: Gaussian, steps: Gaussian) -> Gaussian:
    """The chain's factor over its last state ``z[T-1]``, all other states integrated out."""
    hidden_dim = init.dim()
    joint = sequential_gaussian_tensordot(steps) + init.event_pad(right=hidden_dim)
    return joint.marginalize(left=hidden_dim)


class GaussianHMM(_LinearChain):
    """Hidden Markov model with linear-Gaussian dynamics and observations (a Kalman filter),
    its hidden states integrated out by a pairwise tree over time.

    Generative model (row vectors; the chain starts one step before the first observation)::

        z = initial_dist.sample()
        for t in range(T):
            z = z @ transition_matrix[t] + transition_dist[t].sample()
            x[t] = z @ observation_matrix[t] + observation_dist[t].sample()

    ``initial_dist``, ``transition_dist`` and ``observation_dist`` are MultivariateNormal or
    Independent(Normal, 1) with event_shape ``(hidden_dim,)``, ``(hidden_dim,)`` and
    ``(obs_dim,)``; the rightmost batch dim of the last two, and dim -3 of the matrices
    (``(..., T, hidden_dim, hidden_dim)`` ordered ``(old, new)``, ``(..., T, hidden_dim,
    obs_dim)``), is time, of size ``T`` or 1. ``event_shape`` is ``(T, obs_dim)``; when no
    parameter has a time dim above 1 it is ``(duration or 1, obs_dim)``, and a 1 lets
    ``log_prob`` score data of any length.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> mvn = lambda n: MultivariateNormal(torch.zeros(n), torch.eye(n))
    >>> hmm = GaussianHMM(mvn(2), 0.5 * torch.eye(2), mvn(2), torch.ones(2, 1), mvn(1))
    >>> hmm.event_shape
    torch.Size([1, 1])
    >>> round(float(hmm.log_prob(torch.tensor([[0.5], [1.0], [-0.3]]))), 4)
    -4.7513
    >>> hmm.filter(torch.tensor([[0.5], [1.0], [-0.3]])).loc
    tensor([-0.0442, -0.0442])
    """

    has_rsample = True

    def __init__(
        self,
        initial_dist: Distribution,
        transition_matrix: torch.Tensor,
        transition_dist: Distribution,
        observation_matrix: torch.Tensor,
        observation_dist: Distribution,
        validate_args: Optional[bool] = None,
        duration: Optional[int] = None,
    ):
        batch_shape, steps, time_size = _time_shapes(
            "GaussianHMM",
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
            duration,
        )
        self.hidden_dim = initial_dist.event_shape[0]
        self.obs_dim = observation_dist.event_shape[0]
        self._duration = steps if time_size > 1 else duration
        self._init = mvn_to_gaussian(initial_dist)
        self._trans = _with_time(matrix_and_mvn_to_gaussian(transition_matrix, transition_dist))
        self._obs = _with_time(matrix_and_mvn_to_gaussian(observation_matrix, observation_dist))
        super().__init__(batch_shape, torch.Size((steps, self.obs_dim)), validate_args)

    @classmethod
    def _from_factors(cls, init, trans, obs, duration, batch_shape, like):
        new = cls.__new__(cls)
        new.hidden_dim, new.obs_dim = like.hidden_dim, like.obs_dim
        new._init, new._trans, new._obs, new._duration = init, trans, obs, duration
        steps = duration if duration is not None else 1
        super(GaussianHMM, new).__init__(
            batch_shape, torch.Size((steps, like.obs_dim)), validate_args=False
        )
        new._validate_args = like._validate_args
        return new

    def expand(self, batch_shape: Sequence[int], _instance=None) -> "GaussianHMM":
        new = self._get_checked_instance(GaussianHMM, _instance)
        batch_shape = torch.Size(batch_shape)
        new.hidden_dim, new.obs_dim, new._duration = self.hidden_dim, self.obs_dim, self._duration
        new._init = self._init.expand(batch_shape)
        new._trans = self._trans.expand(batch_shape + self._trans.batch_shape[-1:])
        new._obs = self._obs.expand(batch_shape + self._obs.batch_shape[-1:])
        super(GaussianHMM, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def _steps(self, value: torch.Tensor) -> Gaussian:
        """Factors ``p(z[t] | z[t-1]) p(x[t] | z[t])`` over ``(z[t-1], z[t])``, ``(..., T)``."""
        return self._trans.add_block(self._obs.condition(value), self.hidden_dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log marginal likelihood of ``value`` ``(..., T, obs_dim)``, states integrated out."""
        if self._validate_args:
            self._validate_sample(value)
        return _chain_logsumexp(self._init, self._steps(value))

    def filter(self, value: torch.Tensor) -> MultivariateNormal:
        """Posterior over the final state ``z[T-1]`` given ``value``; it can serve as the
        ``initial_dist`` of a model that continues the series."""
        if self._validate_args:
            self._validate_sample(value)
        final = _chain_final(self._init, self._steps(value))
        return MultivariateNormal(final.mean(), precision_matrix=final.precision)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Reparameterized draw of ``sample_shape + batch_shape + (T, obs_dim)``: the states by
        the pairwise tree (each given the observations' factors integrated over x), then each
        observation given its state."""
        steps = self._need_duration("rsample")
        h = self.hidden_dim
        # Integrating x out of p(x | z) leaves 1, unless conjugate_update reweighted it.
        obs_on_z = self._obs.marginalize(right=self.obs_dim)
        chain = self._trans.add_block(obs_on_z, h).expand(self.batch_shape + (steps,))
        states = sequential_gaussian_filter_sample(self._init, chain, sample_shape)[..., 1:, :]
        obs = self._obs.condition_left(states)
        noise = torch.randn_like(obs.info_vec)
        return sample_from_precision(obs.precision, obs.info_vec, noise)

    def rsample_posterior(
        self, value: torch.Tensor, sample_shape: Sequence[int] = torch.Size()
    ) -> torch.Tensor:
        """Reparameterized draw of the states ``z[0 .. T-1]`` given observations ``value``,
        shape ``sample_shape + batch_shape + (T, hidden_dim)`` (experimental in Pyro too)."""
        if self._validate_args:
            self._validate_sample(value)
        steps = self._steps(value)
        return sequential_gaussian_filter_sample(self._init, steps, sample_shape)[..., 1:, :]

    def conjugate_update(self, other: Distribution) -> Tuple["GaussianHMM", torch.Tensor]:
        """Fuse a Gaussian likelihood ``other`` over the observations into this HMM.

        ``other`` is an Independent(MultivariateNormal, 1) or an Independent(Normal, 2) with
        event_shape ``(T, obs_dim)``. Returns ``(updated, log_normalizer)`` with
        ``self.log_prob(x) + other.log_prob(x) == updated.log_prob(x) + log_normalizer``.
        """
        other_factor = _likelihood_to_gaussian(other, self.obs_dim)
        batch_shape = broadcast_shape(self.batch_shape, other.batch_shape)
        steps = other.event_shape[0]
        if self.event_shape[0] != 1 and steps != self.event_shape[0]:
            raise ValueError(
                f"GaussianHMM.conjugate_update: other has {steps} time steps, this HMM "
                f"{self.event_shape[0]}; give other event_shape {tuple(self.event_shape)}."
            )
        obs = self._obs + other_factor.event_pad(left=self.hidden_dim)
        obs_on_z = obs.marginalize(right=self.obs_dim).event_pad(left=self.hidden_dim)
        chain = (self._trans + obs_on_z).expand(batch_shape + (steps,))
        log_normalizer = _chain_logsumexp(self._init, chain)
        init = self._init + (-log_normalizer)
        updated = GaussianHMM._from_factors(init, self._trans, obs, steps, batch_shape, self)
        return updated, log_normalizer

    def prefix_condition(self, data: torch.Tensor) -> "GaussianHMM":
        """Condition on the first ``t = data.size(-2)`` observations: an HMM over the
        remaining ``duration - t`` steps, its initial state the filtered posterior."""
        duration = self._need_duration("prefix_condition")
        t = data.size(-2)
        if data.dim() < 2 or data.size(-1) != self.obs_dim or not 0 < t < duration:
            raise ValueError(
                f"GaussianHMM.prefix_condition: data of shape {tuple(data.shape)} must be "
                f"(..., t, {self.obs_dim}) with 0 < t < duration = {duration}."
            )
        trans_past, trans_future = _split_time(self._trans, t)
        obs_past, obs_future = _split_time(self._obs, t)
        steps = trans_past.add_block(obs_past.condition(data), self.hidden_dim)
        final = _chain_final(self._init, steps)
        init = final + (-final.event_logsumexp())
        batch_shape = broadcast_shape(self.batch_shape, data.shape[:-2])
        return GaussianHMM._from_factors(
            init, trans_future, obs_future, duration - t, batch_shape, self
        )


def _split_time(factor, t: int):
    """``(first t steps, the rest)`` of a factor; a homogeneous one is both."""
    if factor.batch_shape[-1] == 1:
        return factor, factor
    return factor.time_slice(0, t), factor.time_slice(t, None)


def _likelihood_to_gaussian(other: Distribution, obs_dim: int) -> Gaussian:
    """A Gaussian over one observation ``(obs_dim,)`` per time step from a likelihood with
    event_shape ``(T, obs_dim)``."""
    if (
        isinstance(other, torch.distributions.Independent)
        and other.event_dim == 2
        and other.event_shape[-1] == obs_dim
    ):
        base = other.base_dist
        if other.reinterpreted_batch_ndims == 1 and isinstance(
            base, torch.distributions.MultivariateNormal
        ):
            return mvn_to_gaussian(base)
        if other.reinterpreted_batch_ndims == 2 and isinstance(base, torch.distributions.Normal):
            return mvn_to_gaussian(Independent(base, 1))
    raise ValueError(
        f"GaussianHMM.conjugate_update: other must be an Independent(MultivariateNormal, 1) or "
        f"Independent(Normal, 2) with event_shape (T, {obs_dim}), got {other}."
    )


class GammaGaussianHMM(_LinearChain):
    """GaussianHMM whose noise precisions all share a Gamma-distributed scale ``s``, so that
    the joint of states and observations is multivariate Student-t; ``s`` and the states are
    integrated out exactly.

    Generative model, with ``scale(mvn, s)`` the MultivariateNormal of precision ``s`` times
    that of ``mvn``::

        s = scale_dist.sample()
        z = scale(initial_dist, s).sample()
        for t in range(T):
            z = z @ transition_matrix[t] + scale(transition_dist[t], s).sample()
            x[t] = z @ observation_matrix[t] + scale(observation_dist[t], s).sample()

    Shapes as in :class:`GaussianHMM`; ``scale_dist`` is a Gamma with ``batch_shape``
    broadcasting with the HMM's.

    >>> from pyrolite.distributions import Gamma, MultivariateNormal
    >>> mvn = lambda n: MultivariateNormal(torch.zeros(n), torch.eye(n))
    >>> hmm = GammaGaussianHMM(Gamma(torch.tensor(2.0), torch.tensor(2.0)), mvn(2),
    ...                        0.5 * torch.eye(2), mvn(2), torch.ones(2, 1), mvn(1))
    >>> round(float(hmm.log_prob(torch.tensor([[0.5], [1.0], [-0.3]]))), 4)
    -4.7311
    >>> scale, state = hmm.filter(torch.tensor([[0.5], [1.0], [-0.3]]))
    >>> round(float(scale.concentration), 4), state.event_shape
    (3.5, torch.Size([2]))
    """

    has_rsample = False

    def __init__(
        self,
        scale_dist: Gamma,
        initial_dist: Distribution,
        transition_matrix: torch.Tensor,
        transition_dist: Distribution,
        observation_matrix: torch.Tensor,
        observation_dist: Distribution,
        validate_args: Optional[bool] = None,
        duration: Optional[int] = None,
    ):
        if not isinstance(scale_dist, torch.distributions.Gamma):
            raise ValueError(f"GammaGaussianHMM: scale_dist must be a Gamma, got {scale_dist}.")
        batch_shape, steps, time_size = _time_shapes(
            "GammaGaussianHMM",
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
            duration,
        )
        try:
            batch_shape = broadcast_shape(batch_shape, scale_dist.batch_shape)
        except ValueError:
            raise ValueError(
                f"GammaGaussianHMM: scale_dist.batch_shape {tuple(scale_dist.batch_shape)} "
                f"does not broadcast with the HMM's batch_shape {tuple(batch_shape)}."
            ) from None
        self.hidden_dim = initial_dist.event_shape[0]
        self.obs_dim = observation_dist.event_shape[0]
        self._duration = steps if time_size > 1 else duration
        prior = gamma_to_gamma_gaussian(scale_dist.concentration, scale_dist.rate)
        # The scale prior rides on the initial factor: both are used once per chain.
        self._init = matrix_and_mvn_to_gamma_gaussian(None, initial_dist) + prior.event_pad(
            right=self.hidden_dim
        )
        self._trans = _with_time(
            matrix_and_mvn_to_gamma_gaussian(transition_matrix, transition_dist)
        )
        self._obs = _with_time(
            matrix_and_mvn_to_gamma_gaussian(observation_matrix, observation_dist)
        )
        super().__init__(batch_shape, torch.Size((steps, self.obs_dim)), validate_args)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> "GammaGaussianHMM":
        new = self._get_checked_instance(GammaGaussianHMM, _instance)
        batch_shape = torch.Size(batch_shape)
        new.hidden_dim, new.obs_dim, new._duration = self.hidden_dim, self.obs_dim, self._duration
        new._init = self._init.expand(batch_shape)
        new._trans = self._trans.expand(batch_shape + self._trans.batch_shape[-1:])
        new._obs = self._obs.expand(batch_shape + self._obs.batch_shape[-1:])
        super(GammaGaussianHMM, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _joint(self, value: torch.Tensor) -> GammaGaussian:
        """The factor over ``(s, z[-1], z[T-1])`` given the observations."""
        steps = self._trans + self._obs.condition(value).event_pad(left=self.hidden_dim)
        chain = sequential_gamma_gaussian_tensordot(steps)
        return chain + self._init.event_pad(right=self.hidden_dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log marginal likelihood of ``value``, the states and the scale integrated out."""
        if self._validate_args:
            self._validate_sample(value)
        return self._joint(value).event_logsumexp()

    def filter(self, value: torch.Tensor) -> Tuple[Gamma, MultivariateNormal]:
        """Posterior ``(scale, state)`` given ``value``: the scale ``s`` is Gamma, and the
        final state ``z[T-1]`` given ``s`` is the returned MultivariateNormal with its
        precision multiplied by ``s``."""
        if self._validate_args:
            self._validate_sample(value)
        final = self._joint(value).marginalize(left=self.hidden_dim)
        concentration, rate, loc, precision = final.gamma_and_mvn()
        return Gamma(concentration, rate), MultivariateNormal(loc, precision_matrix=precision)


class GaussianMRF(_LinearChain):
    """Temporal Markov random field with Gaussian factors: the density of the observations
    ``x[0 .. T-1]`` is proportional to the integral over states of

        initial_dist(z[-1]) prod_t transition_dist[t](z[t-1], z[t]) observation_dist[t](z[t], x[t])

    normalized over ``x`` (unlike :class:`GaussianHMM`, the factors need not be conditional
    densities). ``initial_dist``, ``transition_dist`` and ``observation_dist`` are
    MultivariateNormal with event_shape ``(hidden_dim,)``, ``(2 * hidden_dim,)`` (old, new)
    and ``(hidden_dim + obs_dim,)``; the last two have time as their rightmost batch dim.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> mvn = lambda n: MultivariateNormal(torch.zeros(n), torch.eye(n) + 0.5)
    >>> mrf = GaussianMRF(mvn(1), mvn(2), mvn(2))
    >>> mrf.event_shape
    torch.Size([1, 1])
    >>> round(float(mrf.log_prob(torch.tensor([[0.5], [1.0], [-0.3]]))), 4)
    -3.7391
    """

    has_rsample = False

    def __init__(
        self,
        initial_dist: Distribution,
        transition_dist: Distribution,
        observation_dist: Distribution,
        validate_args: Optional[bool] = None,
    ):
        for dist_name, dist in [
            ("initial_dist", initial_dist),
            ("transition_dist", transition_dist),
            ("observation_dist", observation_dist),
        ]:
            if not isinstance(dist, Distribution) or dist.event_dim != 1:
                raise ValueError(
                    f"GaussianMRF: {dist_name} must be a MultivariateNormal, got {dist}."
                )
        hidden_dim = initial_dist.event_shape[0]
        obs_dim = observation_dist.event_shape[0] - hidden_dim
        if transition_dist.event_shape[0] != 2 * hidden_dim or obs_dim < 1:
            raise ValueError(
                f"GaussianMRF: event_shapes {tuple(initial_dist.event_shape)}, "
                f"{tuple(transition_dist.event_shape)} and {tuple(observation_dist.event_shape)}"
                " must be (hidden_dim,), (2 * hidden_dim,) and (hidden_dim + obs_dim,)."
            )
        time_shapes = [transition_dist.batch_shape, observation_dist.batch_shape]
        try:
            steps = broadcast_shape(*(s[-1:] for s in time_shapes), (1,))[0]
            batch_shape = broadcast_shape(initial_dist.batch_shape, *(s[:-1] for s in time_shapes))
        except ValueError:
            raise ValueError(
                f"GaussianMRF: transition_dist.batch_shape {tuple(transition_dist.batch_shape)}"
                f" and observation_dist.batch_shape {tuple(observation_dist.batch_shape)} do not"
                " broadcast: time (the rightmost batch dim) must be equal or 1, and the dims "
                f"left of it must broadcast with {tuple(initial_dist.batch_shape)}."
            ) from None
        self.hidden_dim, self.obs_dim = hidden_dim, obs_dim
        self._duration = steps if steps > 1 else None
        self._init = mvn_to_gaussian(initial_dist)
        self._trans = _with_time(mvn_to_gaussian(transition_dist))
        self._obs = _with_time(mvn_to_gaussian(observation_dist))
        super().__init__(batch_shape, torch.Size((steps, obs_dim)), validate_args)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> "GaussianMRF":
        new = self._get_checked_instance(GaussianMRF, _instance)
        batch_shape = torch.Size(batch_shape)
        new.hidden_dim, new.obs_dim, new._duration = self.hidden_dim, self.obs_dim, self._duration
        new._init = self._init.expand(batch_shape)
        new._trans = self._trans.expand(batch_shape + self._trans.batch_shape[-1:])
        new._obs = self._obs.expand(batch_shape + self._obs.batch_shape[-1:])
        super(GaussianMRF, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density of ``value``: the field integrated over states at ``value``, minus the
        log of that integral over all observations."""
        if self._validate_args:
            self._validate_sample(value)
        h = self.hidden_dim
        observed = self._trans.add_block(self._obs.condition(value), h)
        steps = value.size(-2)
        on_z = self._trans.add_block(self._obs.marginalize(right=self.obs_dim), h)
        normalizer = _chain_logsumexp(self._init, on_z.expand(on_z.batch_shape[:-1] + (steps,)))
        return _chain_logsumexp(self._init, observed) - normalizer


def _split_observation(dist: Distribution):
    """``(noise, transforms)``: the observation noise before its elementwise transforms (a
    LogNormal is a Normal noise, then exp)."""
    if isinstance(dist, torch.distributions.TransformedDistribution):
        return dist.base_dist, list(dist.transforms)
    if isinstance(dist, torch.distributions.Independent) and isinstance(
        dist.base_dist, torch.distributions.TransformedDistribution
    ):
        inner = dist.base_dist
        return Independent(inner.base_dist, dist.reinterpreted_batch_ndims), list(inner.transforms)
    return dist, []


class LinearHMM(_LinearChain):
    """Hidden Markov model with linear dynamics and observations and any noise (Normal,
    StudentT, Stable, ...): it can be sampled (reparameterized) but has no ``log_prob``.

    Generative model (``observation_dist`` is split into a noise and optional elementwise
    transforms, e.g. a LogNormal into a Normal noise and exp)::

        z = initial_dist.sample()
        for t in range(T):
            z = z @ transition_matrix[t] + transition_dist[t].sample()
            x[t] = obs_transform(z @ observation_matrix[t] + obs_noise[t].sample())

    Shapes as in :class:`GaussianHMM`, each distribution with one event dim. The states are
    computed by a parallel prefix scan over time (``O(log T)`` rounds of batched products).

    >>> from pyrolite.distributions import Normal, StudentT
    >>> noise = lambda n: StudentT(3.0, torch.zeros(n), 1.0).to_event(1)
    >>> hmm = LinearHMM(noise(2), torch.eye(2), noise(2), torch.ones(2, 1),
    ...                 Normal(torch.zeros(1), 1.0).to_event(1), duration=5)
    >>> hmm.rsample([3]).shape
    torch.Size([3, 5, 1])
    """

    has_rsample = True

    def __init__(
        self,
        initial_dist: Distribution,
        transition_matrix: torch.Tensor,
        transition_dist: Distribution,
        observation_matrix: torch.Tensor,
        observation_dist: Distribution,
        validate_args: Optional[bool] = None,
        duration: Optional[int] = None,
    ):
        self._observation_support = getattr(observation_dist, "support", constraints.real)
        noise, transforms = _split_observation(observation_dist)
        batch_shape, steps, time_size = _time_shapes(
            "LinearHMM",
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            noise,
            duration,
        )
        self.hidden_dim = initial_dist.event_shape[0]
        self.obs_dim = noise.event_shape[0]
        self._duration = steps if time_size > 1 else duration
        h, o = self.hidden_dim, self.obs_dim
        time = (time_size,)
        self.initial_dist = initial_dist.expand(batch_shape)
        self.transition_matrix = transition_matrix.expand(batch_shape + time + (h, h))
        self.transition_dist = transition_dist.expand(batch_shape + time)
        self.observation_matrix = observation_matrix.expand(batch_shape + time + (h, o))
        self.observation_dist = noise.expand(batch_shape + time)
        self.transforms = transforms
        super().__init__(batch_shape, torch.Size((steps, o)), validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(self._observation_support, 1)

    def expand(self, batch_shape: Sequence[int], _instance=None) -> "LinearHMM":
        new = self._get_checked_instance(LinearHMM, _instance)
        batch_shape = torch.Size(batch_shape)
        new.hidden_dim, new.obs_dim, new._duration = self.hidden_dim, self.obs_dim, self._duration
        new._observation_support = self._observation_support
        time = self.transition_matrix.shape[-3:-2]
        new.initial_dist = self.initial_dist.expand(batch_shape)
        new.transition_matrix = self.transition_matrix.expand(
            batch_shape + self.transition_matrix.shape[-3:]
        )
        new.transition_dist = self.transition_dist.expand(batch_shape + time)
        new.observation_matrix = self.observation_matrix.expand(
            batch_shape + self.observation_matrix.shape[-3:]
        )
        new.observation_dist = self.observation_dist.expand(batch_shape + time)
        new.transforms = self.transforms
        super(LinearHMM, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("LinearHMM.log_prob() is not implemented")

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Reparameterized draw of ``sample_shape + batch_shape + (T, obs_dim)``."""
        steps = self._need_duration("rsample")
        sample_shape = torch.Size(sample_shape)
        time_shape = self.batch_shape + (steps,)
        init = self.initial_dist.rsample(sample_shape)
        trans_noise = self.transition_dist.expand(time_shape).rsample(sample_shape)
        obs_noise = self.observation_dist.expand(time_shape).rsample(sample_shape)
        h, o = self.hidden_dim, self.obs_dim
        matrices = self.transition_matrix.expand(time_shape + (h, h))
        states = linear_recurrence(init, matrices, trans_noise)
        obs_matrix = self.observation_matrix.expand(time_shape + (h, o))
        value = matvec(obs_matrix.mT, states) + obs_noise
        for transform in self.transforms:
            value = transform(value)
        return value


def linear_recurrence(
    init: torch.Tensor, matrices: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """All states of ``z[t] = z[t-1] @ matrices[t] + noise[t]`` from ``z[-1] = init``.

    Shapes ``(..., H)``, ``(..., T, H, H)`` and ``(..., T, H)`` broadcasting; returns
    ``(..., T, H)``. A Hillis-Steele prefix scan: after round ``k`` entry ``t`` holds the
    affine map of steps ``t - 2^k + 1 .. t`` (``M``, ``c`` with ``z[t] = z @ M + c``), so
    ``ceil(log2 T)`` rounds of batched products replace ``T`` sequential ones.

    >>> linear_recurrence(torch.ones(1), 2 * torch.ones(3, 1, 1), torch.zeros(3, 1))
    tensor([[2.],
            [4.],
            [8.]])
    """
    # Work on columns: z @ M as M.T @ z, with the dims that only the noise has (sample
    # dims) as the columns of each product, so that no matrix is copied per sample.
    extra = max(noise.dim() - (matrices.dim() - 1), 0)
    lead = noise.shape[:extra]
    batch = broadcast_shape(matrices.shape[:-3], noise.shape[extra:-2], init.shape[extra:-1])
    steps, hidden = noise.shape[-2:]
    noise = noise.expand(lead + batch + (steps, hidden)).reshape((-1,) + batch + (steps, hidden))
    init = init.expand(lead + batch + (hidden,)).reshape((-1,) + batch + (hidden,))
    offsets = noise.movedim(0, -1)  # (*batch, T, H, N)
    transposed = matrices.mT
    first = transposed[..., 0, :, :] @ init.movedim(0, -1) + offsets[..., 0, :, :]
    offsets = torch.cat([first.unsqueeze(-3), offsets[..., 1:, :, :]], -3)
    shift = 1
    while shift < steps:
        carried = transposed[..., shift:, :, :] @ offsets[..., :-shift, :, :]
        offsets = torch.cat([offsets[..., :shift, :, :], carried + offsets[..., shift:, :, :]], -3)
        if 2 * shift < steps:
            composed = transposed[..., shift:, :, :] @ transposed[..., :-shift, :, :]
            transposed = torch.cat([transposed[..., :shift, :, :], composed], -3)
        shift *= 2
    return offsets.movedim(-1, 0).reshape(lead + batch + (steps, hidden))


class IndependentHMM(TorchDistribution):
    """A batch of independent univariate HMMs seen as one multivariate one: a base HMM of
    batch_shape ``shape + (obs_dim,)`` and event_shape ``(T, 1)`` becomes a distribution of
    batch_shape ``shape`` and event_shape ``(T, obs_dim)``.

    >>> from pyrolite.distributions import MultivariateNormal
    >>> mvn = lambda n, *time: MultivariateNormal(torch.zeros((3,) + time + (n,)), torch.eye(n))
    >>> base = GaussianHMM(mvn(2), 0.5 * torch.eye(2), mvn(2, 1), torch.ones(2, 1), mvn(1, 1),
    ...                    duration=4)  # three channels in batch dim -1, time in dim -2
    >>> hmm = IndependentHMM(base)
    >>> hmm.batch_shape, hmm.event_shape
    (torch.Size([]), torch.Size([4, 3]))
    """

    arg_constraints = {}

    def __init__(self, base_dist: TorchDistribution):
        shape_ok = (
            len(base_dist.batch_shape) >= 1
            and len(base_dist.event_shape) == 2
            and base_dist.event_shape[1] == 1
        )
        if not shape_ok:
            raise ValueError(
                f"IndependentHMM: base_dist must have batch_shape (..., obs_dim) and "
                f"event_shape (T, 1), got batch_shape {tuple(base_dist.batch_shape)} and "
                f"event_shape {tuple(base_dist.event_shape)}. Fix: put the channels in the "
                "base HMM's rightmost batch dim."
            )
        self.base_dist = base_dist
        batch_shape = base_dist.batch_shape[:-1]
        event_shape = base_dist.event_shape[:1] + base_dist.batch_shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=False)

    @constraints.dependent_property
    def support(self):
        return self.base_dist.support

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    @property
    def duration(self) -> Optional[int]:
        return self.base_dist.duration

    def expand(self, batch_shape: Sequence[int], _instance=None) -> "IndependentHMM":
        batch_shape = torch.Size(batch_shape)
        base = self.base_dist.expand(batch_shape + self.base_dist.batch_shape[-1:])
        new = self._get_checked_instance(IndependentHMM, _instance)
        new.base_dist = base
        super(IndependentHMM, new).__init__(batch_shape, self.event_shape, validate_args=False)
        return new

    def _from_base(self, value: torch.Tensor) -> torch.Tensor:
        return value.squeeze(-1).transpose(-1, -2)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._from_base(self.base_dist.rsample(sample_shape))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return self._from_base(self.base_dist.sample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of the channels' log probs; ``value`` is ``(..., T, obs_dim)``."""
        return self.base_dist.log_prob(value.transpose(-1, -2).unsqueeze(-1)).sum(-1)


__all__ = ["GammaGaussianHMM", "GaussianHMM", "GaussianMRF", "IndependentHMM", "LinearHMM"]
