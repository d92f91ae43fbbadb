"""Sylvester flow (van den Berg et al., 2018) with a Householder-product orthogonal ``Q``
and upper-triangular ``R``, ``S``: ``y = x + tanh(x Q S^T + b) R^T Q^T`` (row vectors)."""

from typing import Optional

import torch

from pyrolite.distributions.transforms.householder import Householder
from pyrolite.distributions.transforms.planar import _ForwardWithLogDet


class Sylvester(_ForwardWithLogDet, Householder):
    """Sylvester flow on vectors of size ``input_dim``; ``Q`` is the product of
    ``count_transforms`` Householder reflections (``u_unnormed``), ``R`` and ``S`` are upper
    triangular with ``tanh`` diagonals (``R_dense``/``R_diag``, ``S_dense``/``S_diag``).

    Only values from the latest forward call invert. The map is the paper's
    ``x + h(x Q S^T + b) R^T Q^T``, whose Jacobian determinant is exactly
    ``prod(1 + R_ii S_ii tanh'(.))`` (Sylvester's determinant identity: ``Q`` cancels and
    ``S R`` is triangular). Pyro 1.9 computes ``x + tanh(x S Q^T + b) Q R`` instead but
    scores it with this same formula, which is not that map's log-determinant; pyrolite keeps
    Pyro's parameters and names (a state dict loads either way) and computes the map whose
    log-density is right, so outputs differ from Pyro's for the same weights.

    >>> flow = Sylvester(3, count_transforms=2)
    >>> x = torch.randn(5, 3)
    >>> flow(x).shape, flow.log_abs_det_jacobian(x, flow(x)).shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    volume_preserving = False

    def __init__(self, input_dim: int, count_transforms: int = 1):
        super().__init__(input_dim, count_transforms)
        self.R_dense = torch.nn.Parameter(torch.empty(input_dim, input_dim))
        self.S_dense = torch.nn.Parameter(torch.empty(input_dim, input_dim))
        self.R_diag = torch.nn.Parameter(torch.empty(input_dim))
        self.S_diag = torch.nn.Parameter(torch.empty(input_dim))
        self.b = torch.nn.Parameter(torch.empty(input_dim))
        self.register_buffer("triangular_mask", torch.ones(input_dim, input_dim).triu(diagonal=1))
        self.reset_parameters2()

    def reset_parameters2(self) -> None:
        """Draw ``R``, ``S`` and ``b`` uniformly in ``+-1/input_dim``."""
        stdv = 1.0 / self.input_dim
        with torch.no_grad():
            for p in (self.R_dense, self.S_dense, self.R_diag, self.S_diag, self.b):
                p.uniform_(-stdv, stdv)

    def R(self) -> torch.Tensor:
        """Upper-triangular ``R`` with diagonal ``tanh(R_diag)``."""
        return self.R_dense * self.triangular_mask + torch.diag(torch.tanh(self.R_diag))

    def S(self) -> torch.Tensor:
        """Upper-triangular ``S`` with diagonal ``tanh(S_diag)``."""
        return self.S_dense * self.triangular_mask + torch.diag(torch.tanh(self.S_diag))

    def Q(self, x: torch.Tensor) -> torch.Tensor:
        """The orthogonal matrix of the Householder reflections (``x`` gives dtype/device)."""
        eye = torch.eye(self.input_dim, dtype=x.dtype, device=x.device)
        # Householder's forward (the reflections) applied to the rows of the identity.
        return Householder._call(self, eye)

    @staticmethod
    def dtanh_dx(x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(x).square()

    def _forward_and_log_det(self, x):
        Q = self.Q(x)
        preactivation = x @ (Q @ self.S().T) + self.b
        tanh = torch.tanh(preactivation)
        out = self.R().T @ Q.T
        y = torch.addmm(x, tanh, out) if x.dim() == 2 else x + tanh @ out
        diag = torch.tanh(self.R_diag) * torch.tanh(self.S_diag)
        log_det = torch.log(torch.abs(1 + (1 - tanh.square()) * diag) + 1e-8).sum(-1)
        return y, log_det


def sylvester(input_dim: int, count_transforms: Optional[int] = None) -> Sylvester:
    """A :class:`Sylvester` flow; ``count_transforms`` defaults to ``input_dim // 2 + 1``
    (Pyro's choice).

    >>> sylvester(6).u_unnormed.shape
    torch.Size([4, 6])
    """
    if count_transforms is None:
        count_transforms = input_dim // 2 + 1
    return Sylvester(input_dim, count_transforms=count_transforms)
