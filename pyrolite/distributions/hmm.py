"""DiscreteHMM: a hidden Markov model with discrete states whose time dimension is summed
out (``log_prob``, ``filter``) or sampled (``sample``) by a pairwise tree over time, in
``O(log T)`` sequential depth rather than a Python loop over the ``T`` steps."""

from typing import Optional, Sequence

import torch
from torch.distributions import constraints

from pyrolite.distributions.torch import Categorical
from pyrolite.distributions.torch_distribution import TorchDistribution, copy_forced_has_rsample
from pyrolite.distributions.util import broadcast_shape
from pyrolite.ops.scan import logmatmulexp, scan_levels, sequential_logmatmulexp


class DiscreteHMM(TorchDistribution):
    """Hidden Markov model with ``K`` discrete latent states and any observation family.

    The hidden chain starts one step *before* the first observation: ``z[-1]`` is drawn
    from ``initial_logits``, each ``z[t]`` (t = 0 .. T-1) from ``transition_logits[t]``
    given ``z[t-1]``, and ``x[t]`` from ``observation_dist`` at state ``z[t]``, so

        p(x) = sum_z  init[z[-1]]  prod_t  trans[t][z[t-1], z[t]]  obs[t][z[t]](x[t]).

    Shapes (both logits are normalized over their last dim, as Pyro does):

    * ``initial_logits``: ``(..., K)``.
    * ``transition_logits``: ``(..., T or 1, K, K)``, ``(old, new)``; a missing or size-1
      time dim means the same transitions at every step.
    * ``observation_dist``: ``batch_shape`` ``(..., T or 1, K)``, any ``event_shape``.

    ``batch_shape`` broadcasts the three ``...``; ``event_shape`` is
    ``(T,) + observation_dist.event_shape``. When neither ``transition_logits`` nor
    ``observation_dist`` has a time dim above 1, ``T`` is ``duration`` if given, else 1,
    and that broadcastable 1 lets ``log_prob`` score data of any length (``sample`` then
    needs ``duration``).

    >>> from pyrolite.distributions import Normal
    >>> hmm = DiscreteHMM(torch.zeros(2), torch.tensor([[0.0, -9.0], [-9.0, 0.0]]),
    ...                   Normal(torch.tensor([-1.0, 1.0]), 0.5))
    >>> hmm.batch_shape, hmm.event_shape
    (torch.Size([]), torch.Size([1]))
    >>> hmm.log_prob(torch.tensor([1.1, 0.9, 1.2]))
    tensor(-1.4908)
    >>> hmm.filter(torch.tensor([1.1, 0.9, 1.2])).probs
    tensor([8.3723e-09, 1.0000e+00])
    """

    arg_constraints = {"initial_logits": constraints.real, "transition_logits": constraints.real}
    has_enumerate_support = False
    has_rsample = False

    def __init__(
        self,
        initial_logits: torch.Tensor,
        transition_logits: torch.Tensor,
        observation_dist: torch.distributions.Distribution,
        validate_args: Optional[bool] = None,
        duration: Optional[int] = None,
    ):
        if not isinstance(observation_dist, torch.distributions.Distribution):
            raise ValueError(
                "DiscreteHMM: observation_dist must be a distribution, got "
                f"{type(observation_dist).__name__}"
            )
        batch_shape, event_shape = _hmm_shapes(
            initial_logits.shape, transition_logits.shape, observation_dist, duration
        )
        self.initial_logits = initial_logits - initial_logits.logsumexp(-1, keepdim=True)
        self.transition_logits = transition_logits - transition_logits.logsumexp(-1, keepdim=True)
        self.observation_dist = observation_dist
        self.duration = duration
        super().__init__(batch_shape, event_shape, validate_args)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(self.observation_dist.support, 1)

    @property
    def num_states(self) -> int:
        return self.initial_logits.size(-1)

    def expand(self, batch_shape: Sequence[int], _instance=None):
        new = self._get_checked_instance(DiscreteHMM, _instance)
        batch_shape = torch.Size(batch_shape)
        num_states = self.num_states
        new.initial_logits = self.initial_logits.expand(batch_shape + (num_states,))
        new.transition_logits = self.transition_logits.expand(
            batch_shape + self.transition_logits.shape[-3:]
            if self.transition_logits.dim() >= 3
            else batch_shape + (1, num_states, num_states)
        )
        obs_time = self.observation_dist.batch_shape[-2:-1] or (1,)
        new.observation_dist = self.observation_dist.expand(
            batch_shape + tuple(obs_time) + (num_states,)
        )
        new.duration = self.duration
        super(DiscreteHMM, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return copy_forced_has_rsample(self, new)

    def _check_value(self, value: torch.Tensor) -> int:
        """Raise ValueError unless ``value`` is ``(..., T) + obs event_shape`` (and, when
        validating, in the support); return the index of its time dim."""
        obs_event_shape = self.observation_dist.event_shape
        time_dim = value.dim() - len(obs_event_shape) - 1
        duration = self.event_shape[0]
        fits = (
            time_dim >= 0
            and value.shape[time_dim + 1 :] == obs_event_shape
            and (duration == 1 or value.size(time_dim) in (1, duration))
        )
        if fits:
            try:
                broadcast_shape(value.shape[:time_dim], self.batch_shape)
            except ValueError:
                fits = False
        if not fits:
            raise ValueError(
                f"DiscreteHMM: value of shape {tuple(value.shape)} does not fit batch_shape "
                f"{tuple(self.batch_shape)} + event_shape {tuple(self.event_shape)}: expected "
                f"(..., T) + {tuple(obs_event_shape)} with T = {duration} (any T when the "
                "HMM's T is 1) and leading dims that broadcast with batch_shape. Fix: pass "
                "one observation per time step, time left of the observation's event dims."
            )
        if self._validate_args and not bool(self.support.check(value).all()):
            raise ValueError(
                f"DiscreteHMM: value of shape {tuple(value.shape)} is outside the support "
                f"{self.support} of observation_dist {self.observation_dist}."
            )
        return time_dim

    def _step_logits(self, value: torch.Tensor) -> torch.Tensor:
        """``trans[t][i, j] + log obs[t][j](x[t])``, shape ``(..., T, K, K)``."""
        time_dim = self._check_value(value)
        # The state dim goes just left of the observation's event dims.
        obs_log_prob = self.observation_dist.log_prob(value.unsqueeze(time_dim + 1))
        return self.transition_logits + obs_log_prob.unsqueeze(-2)

    def _final_logits(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(x, z[T-1] = j)``, shape ``(..., K)``."""
        chain = sequential_logmatmulexp(self._step_logits(value))
        return (self.initial_logits.unsqueeze(-1) + chain).logsumexp(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log marginal likelihood of ``value`` (..., T, *obs_event), the states summed out."""
        return self._final_logits(value).logsumexp(-1)

    def filter(self, value: torch.Tensor) -> Categorical:
        """Posterior over the final state ``z[T-1]`` given observations ``value``.

        Its normalized ``logits`` can serve as ``initial_logits`` of a model that continues
        the chain (note that ``initial_logits`` is the state one step before the data).
        """
        logits = self._final_logits(value)
        return Categorical(logits=logits - logits.logsumexp(-1, keepdim=True))

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draw observations ``(sample_shape + batch_shape + event_shape)``: states by a
        top-down pass over the pairwise tree of transition products, then one observation
        per step at its state."""
        duration = self.event_shape[0]
        if self.duration is None and duration == 1:
            raise ValueError(
                "DiscreteHMM.sample: this HMM is homogeneous in time and its length is "
                "unknown. Fix: pass duration=T (or give transition_logits or "
                "observation_dist a time dim of size T)."
            )
        shape = torch.Size(sample_shape) + self.batch_shape
        num_states = self.num_states
        with torch.no_grad():
            transitions = self.transition_logits.expand(
                self.batch_shape + (duration, num_states, num_states)
            )
            states = _sample_path(self.initial_logits, transitions, shape)
            obs_shape = self.batch_shape + (duration, num_states)
            per_state = self.observation_dist.expand(obs_shape).sample(sample_shape)
            event_dim = self.observation_dist.event_dim
            index = states.reshape(shape + (duration, 1) + (1,) * event_dim)
            index = index.expand(shape + (duration, 1) + self.observation_dist.event_shape)
            return per_state.gather(-event_dim - 1, index).squeeze(-event_dim - 1)


def _hmm_shapes(initial_shape, transition_shape, observation_dist, duration):
    """``(batch_shape, event_shape)`` of a DiscreteHMM, or a ValueError naming the shapes."""
    obs_batch = observation_dist.batch_shape
    shapes = (
        f"initial_logits {tuple(initial_shape)}, transition_logits "
        f"{tuple(transition_shape)}, observation_dist.batch_shape {tuple(obs_batch)}"
    )
    expected = "expected (..., K), (..., T or 1, K, K) and (..., T or 1, K)"
    if len(initial_shape) < 1 or len(transition_shape) < 2 or len(obs_batch) < 1:
        raise ValueError(f"DiscreteHMM: {shapes}: {expected}; a dim is missing.")
    num_states = initial_shape[-1]
    if transition_shape[-2:] != (num_states, num_states) or obs_batch[-1] != num_states:
        raise ValueError(
            f"DiscreteHMM: {shapes}: {expected}, and the number of states K differs "
            f"(initial_logits says K = {num_states})."
        )
    transition_time = transition_shape[-3] if len(transition_shape) >= 3 else 1
    obs_time = obs_batch[-2] if len(obs_batch) >= 2 else 1
    if transition_time != obs_time and 1 not in (transition_time, obs_time):
        raise ValueError(
            f"DiscreteHMM: {shapes}: the time sizes {transition_time} (transitions) and "
            f"{obs_time} (observations) differ; make them equal or one of them 1."
        )
    time = max(transition_time, obs_time)
    if duration is not None:
        if time != 1 and duration != time:
            raise ValueError(
                f"DiscreteHMM: duration={duration} but {shapes} give T = {time}; pass "
                f"duration={time} or leave it None."
            )
        time = duration
    try:
        batch_shape = broadcast_shape(initial_shape[:-1], transition_shape[:-3], obs_batch[:-2])
    except ValueError:
        raise ValueError(
            f"DiscreteHMM: {shapes}: the batch dims (left of K, of (T, K, K) and of "
            f"(T, K)) do not broadcast."
        ) from None
    return batch_shape, torch.Size((time,)) + observation_dist.event_shape


def _sample_path(
    initial_logits: torch.Tensor, transitions: torch.Tensor, shape: torch.Size
) -> torch.Tensor:
    """States ``z[0 .. T-1]`` of the chain, shape ``shape + (T,)``, in O(log T) rounds.

    The initial step is folded into the first transition as a matrix whose rows are all the
    marginal of ``z[0]``, so the chain hangs off a dummy state 0. Going down the tree, each
    node's states at both ends are known; the state between its two children is drawn from
    ``left[start, :] + right[:, end]``, for all nodes of a level at once.
    """
    first = logmatmulexp(initial_logits.unsqueeze(-2), transitions[..., 0, :, :])
    first = first.expand(transitions[..., 0, :, :].shape).unsqueeze(-3)
    levels = scan_levels(torch.cat([first, transitions[..., 1:, :, :]], dim=-3))
    top = levels[-1][..., 0, 0, :].expand(shape + levels[-1].shape[-1:])
    # ends[..., i]: the state at the boundary left of node i of the current level.
    last = _gumbel_argmax(top)
    ends = torch.stack([torch.zeros_like(last), last], -1)
    for level in reversed(levels[:-1]):
        pairs = level.size(-3) // 2
        left = level[..., 0 : 2 * pairs : 2, :, :].expand(shape + (pairs,) + level.shape[-2:])
        right = level[..., 1 : 2 * pairs : 2, :, :].expand(left.shape)
        start, end = ends[..., :pairs], ends[..., 1 : pairs + 1]
        num_states = level.size(-1)
        from_start = left.gather(
            -2, start[..., None, None].expand(left.shape[:-2] + (1, num_states))
        )
        to_end = right.gather(-1, end[..., None, None].expand(right.shape[:-1] + (1,)))
        middle = _gumbel_argmax(from_start.squeeze(-2) + to_end.squeeze(-1))
        interleaved = torch.stack([start, middle], -1).reshape(shape + (2 * pairs,))
        ends = torch.cat([interleaved, ends[..., pairs:]], -1)
    return ends[..., 1:]


def _gumbel_argmax(logits: torch.Tensor) -> torch.Tensor:
    """One categorical draw per row of ``logits``: argmax of logits plus Gumbel noise."""
    noise = torch.empty_like(logits).exponential_().log()
    return (logits - noise).argmax(-1)
