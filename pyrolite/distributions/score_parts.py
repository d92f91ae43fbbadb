"""The three per-site terms a gradient estimator needs from one log-density evaluation."""

from collections import namedtuple
from typing import Optional, Union

import torch

from pyrolite.distributions.util import Scale, is_identically_zero, scale_and_mask


class ScoreParts(namedtuple("ScoreParts", ["log_prob", "score_function", "entropy_term"])):
    """``log_prob`` (the ELBO term), ``score_function`` (multiplies downstream costs) and
    ``entropy_term`` (differentiated pathwise); a part that does not apply is the number 0.

    >>> parts = ScoreParts(torch.tensor([1.0, 2.0]), 0, torch.tensor([1.0, 2.0]))
    >>> parts.scale_and_mask(3.0, torch.tensor([True, False]))
    ScoreParts(log_prob=tensor([3., 0.]), score_function=0, entropy_term=tensor([3., 0.]))
    """

    __slots__ = ()

    def scale_and_mask(
        self, scale: Scale = 1.0, mask: Optional[Union[bool, torch.Tensor]] = None
    ) -> "ScoreParts":
        """Apply a plate's data-multiplicity ``scale`` and a ``mask`` to the cost terms.

        ``score_function`` is left alone on purpose: an estimator multiplies it by
        downstream costs that already carry their own scale and mask, so scaling it here
        would count the scale twice.
        """
        log_prob = _scale_and_mask_part(self.log_prob, scale, mask)
        if self.entropy_term is self.log_prob:
            # Reparameterized sites: one scaled tensor serves both parts.
            return ScoreParts(log_prob, self.score_function, log_prob)
        entropy_term = _scale_and_mask_part(self.entropy_term, scale, mask)
        return ScoreParts(log_prob, self.score_function, entropy_term)


def _scale_and_mask_part(part, scale, mask):
    if is_identically_zero(part):
        return part
    return scale_and_mask(part, scale, mask)
