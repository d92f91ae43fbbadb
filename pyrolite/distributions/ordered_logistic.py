"""OrderedLogistic: a Categorical over ordered classes whose cumulative log-odds are
``cutpoints - predictor``."""

import torch
from torch.distributions import constraints

from pyrolite.distributions.constraints import ordered_vector
from pyrolite.distributions.torch import Categorical


class OrderedLogistic(Categorical):
    """``P(y <= k) = sigmoid(cutpoints[..., k] - predictor)`` for ``k < K - 1``, over
    ``K = cutpoints.shape[-1] + 1`` ordered classes; ``predictor`` broadcasts against
    ``cutpoints[..., 0]`` and sets the batch shape.

    >>> d = OrderedLogistic(torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0]))
    >>> d.batch_shape, [round(p, 4) for p in d.probs[0].tolist()]
    (torch.Size([2]), [0.2689, 0.4621, 0.2689])
    """

    arg_constraints = {"predictor": constraints.real, "cutpoints": ordered_vector}

    def __init__(self, predictor: torch.Tensor, cutpoints: torch.Tensor, validate_args=None):
        if cutpoints.dim() < 1:
            raise ValueError(
                "OrderedLogistic: cutpoints must have at least one dim (the ordered cutpoints "
                f"along the last), got shape {tuple(cutpoints.shape)}."
            )
        batch_shape = torch.broadcast_shapes(predictor.shape, cutpoints.shape[:-1])
        self.predictor = predictor.expand(batch_shape)
        self.cutpoints = cutpoints.expand(batch_shape + cutpoints.shape[-1:])
        cumulative = torch.sigmoid(self.cutpoints - self.predictor.unsqueeze(-1))
        # Differences of a monotone sigmoid at ordered points: every class gets mass >= 0.
        probs = torch.cat(
            [
                cumulative[..., :1],
                cumulative[..., 1:] - cumulative[..., :-1],
                1 - cumulative[..., -1:],
            ],
            dim=-1,
        )
        super().__init__(probs=probs, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(OrderedLogistic, _instance)
        batch_shape = torch.Size(batch_shape)
        new.predictor = self.predictor.expand(batch_shape)
        new.cutpoints = self.cutpoints.expand(batch_shape + self.cutpoints.shape[-1:])
        return super().expand(batch_shape, _instance=new)
