"""``SVGD``: Stein variational gradient descent, a set of particles moved by a kernelized
Stein update toward a model's posterior; the kernels ``RBFSteinKernel`` and
``IMQSteinKernel`` (per-dimension, with the median bandwidth heuristic)."""

import math
from abc import ABCMeta, abstractmethod
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.distributions import biject_to

from .. import primitives
from ..poutine.condition_messenger import ConditionMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import run_traced

_PARTICLES = "svgd_particles"


class SteinKernel(metaclass=ABCMeta):
    """A kernel for SVGD: its log and the gradient of its log, per particle pair and dim."""

    @abstractmethod
    def log_kernel_and_grad(self, particles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """For ``particles`` of shape ``(N, D)``: ``log_kernel`` of shape ``(N, N, D)`` and
        its gradient with respect to the first particle of each pair, ``(N, N, D)``."""
        raise NotImplementedError


class _MedianBandwidth(SteinKernel):
    """Per-dimension bandwidth ``factor * median(|x_n - x_m|^2) / log(N + 1)`` (Liu & Wang)."""

    def __init__(self, bandwidth_factor: Optional[float] = None):
        self.bandwidth_factor = bandwidth_factor

    def _bandwidth(self, norm_sq: torch.Tensor) -> torch.Tensor:
        n = norm_sq.size(0)
        upper = torch.triu_indices(n, n, 1, device=norm_sq.device)
        median = norm_sq[upper[0], upper[1]].median(dim=0).values
        factor = 1.0 if self.bandwidth_factor is None else self.bandwidth_factor
        return factor * median / math.log(n + 1)

    def _diffs(self, particles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        delta = particles.unsqueeze(1) - particles.unsqueeze(0)  # (N, N, D): x_n - x_m
        norm_sq = delta.square()
        return delta, norm_sq, self._bandwidth(norm_sq)


class RBFSteinKernel(_MedianBandwidth):
    """``K(x, y) = exp(-(x - y)^2 / h)`` per dimension, ``h`` from the median heuristic
    scaled by ``bandwidth_factor``.

    >>> log_k, grad = RBFSteinKernel().log_kernel_and_grad(torch.tensor([[0.0], [1.0], [3.0]]))
    >>> log_k.shape, round(float(log_k[0, 1, 0]), 4)
    (torch.Size([3, 3, 1]), -0.3466)
    """

    def log_kernel_and_grad(self, particles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        delta, norm_sq, h = self._diffs(particles)
        return -norm_sq / h, -2.0 * delta / h


class IMQSteinKernel(_MedianBandwidth):
    """Inverse multi-quadratic ``K(x, y) = (alpha + (x - y)^2 / h)^beta`` per dimension.

    >>> log_k, grad = IMQSteinKernel().log_kernel_and_grad(torch.tensor([[0.0], [1.0], [3.0]]))
    >>> round(float(log_k[0, 1, 0]), 4)
    0.0833
    """

    def __init__(
        self, alpha: float = 0.5, beta: float = -0.5, bandwidth_factor: Optional[float] = None
    ):
        if alpha <= 0.0:
            raise ValueError(f"IMQSteinKernel: alpha must be positive, got {alpha}")
        if not -1.0 < beta < 0.0:
            raise ValueError(f"IMQSteinKernel: beta must lie in (-1, 0), got {beta}")
        super().__init__(bandwidth_factor)
        self.alpha = alpha
        self.beta = beta

    def log_kernel_and_grad(self, particles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        delta, norm_sq, h = self._diffs(particles)
        base = self.alpha + norm_sq / h
        return self.beta * base.log(), self.beta * 2.0 * delta / (h * base)


class SVGD:
    """Stein variational gradient descent with ``num_particles`` particles in the
    unconstrained space of the model's (continuous) latents.

    :param model: the model, vectorizable by a plate (all latents continuous).
    :param kernel: a :class:`SteinKernel` such as :class:`RBFSteinKernel`.
    :param optim: a pyrolite optimizer (e.g. ``pyrolite.optim.Adam({"lr": 0.1})``).
    :param num_particles: the number of particles (at least 2).
    :param max_plate_nesting: the model's plate depth.
    :param mode: ``"univariate"`` (a kernel per dimension, [2]) or ``"multivariate"``
        (the product over dimensions, as in Liu & Wang [1]).

    >>> import pyrolite, pyrolite.distributions as dist, pyrolite.optim
    >>> def model():
    ...     pyrolite.sample("x", dist.Normal(2.0, 1.0))
    >>> svgd = SVGD(model, RBFSteinKernel(), pyrolite.optim.Adam({"lr": 0.1}), 50, 0)
    >>> for _ in range(200):
    ...     _ = svgd.step()
    >>> abs(float(svgd.get_named_particles()["x"].mean()) - 2.0) < 0.1
    True
    """

    def __init__(
        self,
        model: Callable,
        kernel: SteinKernel,
        optim,
        num_particles: int,
        max_plate_nesting: int,
        mode: str = "univariate",
    ):
        if not isinstance(kernel, SteinKernel):
            raise ValueError(f"SVGD: kernel must be a SteinKernel, got {type(kernel).__name__}")
        if mode not in ("univariate", "multivariate"):
            raise ValueError(f"SVGD: mode must be 'univariate' or 'multivariate', got {mode!r}")
        if not isinstance(num_particles, int) or num_particles < 2:
            raise ValueError(f"SVGD: num_particles must be an int >= 2, got {num_particles}")
        self.model = model
        self.kernel = kernel
        self.optim = optim
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.mode = mode
        self._vectorized_model = vectorize(model, _PARTICLES, num_particles, -1 - max_plate_nesting)
        # (name, per-particle value shape, transform to the support, slice of the D columns)
        self._sites: Optional[List[Tuple[str, torch.Size, object, slice]]] = None

    def _setup(self, args, kwargs) -> torch.Tensor:
        """Find the latent sites and the particles' initial values (draws of the prior)."""
        with torch.no_grad():
            trace = run_traced(self._vectorized_model, args, kwargs)
        sites, columns, start = [], [], 0
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site["is_observed"] or site["infer"].get("_subsample"):
                continue
            value = site["value"]
            if value.dim() == 0 or value.size(0) != self.num_particles:
                raise ValueError(
                    f"SVGD: site '{name}' has value shape {tuple(value.shape)}, without the "
                    f"{self.num_particles} particles leftmost; set max_plate_nesting to the "
                    "model's plate depth and declare every batch dim with a plate"
                )
            if site["fn"].support.is_discrete:
                raise ValueError(f"SVGD: site '{name}' is discrete; SVGD needs continuous latents")
            transform = biject_to(site["fn"].support)
            unconstrained = transform.inv(value).reshape(self.num_particles, -1)
            width = unconstrained.size(1)
            sites.append((name, value.shape[1:], transform, slice(start, start + width)))
            columns.append(unconstrained)
            start += width
        self._sites = sites
        return torch.cat(columns, 1)

    def _particles(self, args, kwargs) -> torch.Tensor:
        init = None if self._sites is not None else self._setup(args, kwargs)
        if init is None:
            return primitives.param(_PARTICLES)
        return primitives.param(_PARTICLES, init)

    def _constrained(self, particles: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        values, log_det = {}, particles.new_zeros(())
        for name, shape, transform, columns in self._sites:
            unconstrained = particles[:, columns].reshape((self.num_particles,) + shape)
            value = transform(unconstrained)
            log_det = log_det + transform.log_abs_det_jacobian(unconstrained, value).sum()
            values[name] = value
        return values, log_det

    def step(self, *args, **kwargs) -> Dict[str, float]:
        """One SVGD update of the particles; returns ``{site: mean squared update}`` (to
        monitor convergence)."""
        particles = self._particles(args, kwargs)
        with torch.enable_grad():
            values, log_det = self._constrained(particles)
            with ConditionMessenger(values):  # fixes the latents; their log-probs still count
                trace = run_traced(self._vectorized_model, args, kwargs)
            log_joint = trace.log_prob_sum() + log_det
            grad = torch.autograd.grad(log_joint, particles)[0]
        x = particles.detach()
        log_kernel, kernel_grad = self.kernel.log_kernel_and_grad(x)
        if self.mode == "univariate":
            kernel = log_kernel.exp()  # (N, N, D)
            attractive = (kernel * grad.unsqueeze(1)).sum(0)
            repulsive = (kernel * kernel_grad).sum(0)
        else:
            kernel = log_kernel.sum(-1).exp()  # (N, N)
            attractive = kernel.t() @ grad
            repulsive = (kernel.unsqueeze(-1) * kernel_grad).sum(0)
        update = (attractive + repulsive) / self.num_particles
        particles.grad = -update
        self.optim([particles])
        particles.grad = None
        return {
            name: float(update[:, columns].square().mean()) for name, _, _, columns in self._sites
        }

    def get_named_particles(self) -> Dict[str, torch.Tensor]:
        """``{site: tensor}`` of the particles' constrained values, particles leftmost."""
        if self._sites is None:
            raise RuntimeError("SVGD.get_named_particles: call .step(...) first")
        with torch.no_grad():
            values, _ = self._constrained(primitives.param(_PARTICLES))
        return values
