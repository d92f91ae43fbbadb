"""``SplitReparam``: split a latent into independently guided parts along one dim."""

from typing import Callable, Sequence

import torch

from ...distributions.delta import Delta
from ...distributions.improper_uniform import ImproperUniform
from .reparam import Reparam, sample_auxiliary


def default_support(fn, slices, dim):
    """The support of each part: the site's own (it must not couple the split dim)."""
    return fn.support


class SplitReparam(Reparam):
    """Split ``x`` along ``dim`` into ``x_split_0``, ``x_split_1``, ... of sizes
    ``sections``, each an ``ImproperUniform`` site (to be drawn by a guide, e.g. different
    autoguides per part); the original site is a ``Delta`` at the concatenation, carrying
    the original log-density.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.poutine.reparam_messenger import ReparamMessenger
    >>> def model():
    ...     return pyrolite.sample("x", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    >>> data = {"x_split_0": torch.zeros(1), "x_split_1": torch.zeros(2)}
    >>> with poutine.trace() as tr, ReparamMessenger({"x": SplitReparam([1, 2], -1)}):
    ...     with poutine.condition(data=data):
    ...         x = model()
    >>> round(float(tr.get_trace().log_prob_sum()), 4)
    -2.7568
    """

    def __init__(self, sections: Sequence[int], dim: int, support_fn: Callable = default_support):
        if dim >= 0:
            raise ValueError(f"SplitReparam: dim must be negative (an event dim), got {dim}")
        self.event_dim = -dim
        self.sections = list(sections)
        self.support_fn = support_fn

    def apply(self, msg):
        name, fn, value, is_observed = msg["name"], msg["fn"], msg["value"], msg["is_observed"]
        if fn.event_dim < self.event_dim:
            raise ValueError(
                f"SplitReparam at site '{name}': dim={-self.event_dim} is not an event dim of "
                f"a distribution with event_shape {tuple(fn.event_shape)}; use .to_event()."
            )
        split_dim = -self.event_dim
        value_split = [None] * len(self.sections)
        if value is not None:
            value_split = list(value.split(self.sections, split_dim))
        support = self.support_fn(fn, self.sections, split_dim)
        for i, size in enumerate(self.sections):
            event_shape = list(fn.event_shape)
            event_shape[split_dim] = size
            part = ImproperUniform(support, fn.batch_shape, torch.Size(event_shape))
            value_split[i] = sample_auxiliary(
                f"{name}_split_{i}", part, value_split[i], is_observed
            )
        value = torch.cat(value_split, dim=split_dim)
        log_density = fn.log_prob(value)
        new_fn = Delta(value, log_density=log_density, event_dim=fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}
