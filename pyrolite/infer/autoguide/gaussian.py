"""``AutoGaussian``: a joint Gaussian guide whose precision matrix has the sparsity of the
model's factor graph (dense backend only).

Each latent site ``s`` owns a factor over its own whitened latent and those of the sites
its prior depends on: ``exp(-|x_f^T P_s - w_s|^2 / 2)`` with params ``prec_sqrts.{s}``
(``P_s``) and ``white_vecs.{s}`` (``w_s``), batched over the site's plates. The product of
the factors is a Gaussian over all whitened latents ``x`` (precision ``sum P P^T``), and a
site's unconstrained value is ``locs.{s} + scales.{s} * x_s``.
"""

from contextlib import ExitStack
from typing import Callable, Dict, List, Optional

import torch

from ... import primitives as pyro
from ...distributions import Delta, MultivariateNormal, constraints
from ...distributions.util import sum_rightmost
from ...nn.module import PyroModule, PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.plate_messenger import CondIndepStackFrame
from .continuous import AutoContinuous
from .guides import _check_init_scale, _mask_is_false, deep_setattr
from .initialization import init_to_feasible
from .structured import prior_dependencies


class AutoGaussian(AutoContinuous):
    """A Gaussian guide with the model's conditional independences, as Pyro's
    ``AutoGaussian``; ``backend="dense"`` (the default) builds the full precision matrix,
    and the construction returns an ``AutoGaussianDense`` (so params are named
    ``"AutoGaussianDense.locs.z"``). The ``"funsor"`` backend is not available.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.Normal(a, 1.0))
    >>> guide = AutoGaussian(model)
    >>> type(guide).__name__, sorted(guide().keys())
    ('AutoGaussianDense', ['a', 'b'])
    >>> tuple(pyrolite.get_param_store()["AutoGaussianDense.prec_sqrts.b"].shape)
    (2, 1)
    """

    scale_constraint = constraints.softplus_positive

    def __new__(cls, *args, backend: Optional[str] = None, **kwargs):
        if cls is AutoGaussian:
            backend = "dense" if backend is None else backend
            if backend == "funsor":
                raise NotImplementedError(
                    'AutoGaussian(..., backend="funsor") is not available in pyrolite: use '
                    'backend="dense" (the default), which builds the same Gaussian with a '
                    "dense precision matrix"
                )
            if backend != "dense":
                raise ValueError(f'AutoGaussian: backend must be "dense", got {backend!r}')
            cls = AutoGaussianDense
        return super().__new__(cls)

    def __init__(
        self,
        model: Callable,
        *,
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        backend: Optional[str] = None,
    ):
        super().__init__(model, init_loc_fn)
        self._init_scale = _check_init_scale("AutoGaussian", init_scale)

    def _check_can_subsample(self, name: str, frame: CondIndepStackFrame) -> None:
        raise NotImplementedError(
            f"AutoGaussian cannot guide site '{name}', a local latent in the subsampled "
            f"plate('{frame.name}'): its precision couples every element. Do not subsample "
            "that plate, or use AutoNormal for such sites (in an AutoGuideList)."
        )


class AutoGaussianDense(AutoGaussian):
    """The dense backend of ``AutoGaussian`` (see there)."""

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        sites = self._sites
        values = {n: s["value"] for n, s in self.prototype_trace.nodes.items() if n in sites}
        upstreams = prior_dependencies(self.model, values, *args, **kwargs)
        # Global index of every whitened element: sites in model order, each flattened.
        ids = {}
        for name, site in sites.items():
            start, stop = self._slices[name]
            shape = site.unconstrained_shape
            event = shape[len(shape) - site.unconstrained_event_dim :]
            batch = shape[: len(shape) - site.unconstrained_event_dim]
            ids[name] = torch.arange(start, stop).reshape(batch + (event.numel(),))
        self.locs, self.scales = PyroModule(), PyroModule()
        self.white_vecs, self.prec_sqrts = PyroModule(), PyroModule()
        plans, factors = [], []
        for name, site in sites.items():
            init = site.init_unconstrained
            event_dim = site.unconstrained_event_dim
            loc = deep_setattr(self.locs, name, PyroParam(init, constraints.real, event_dim))
            scale_init = torch.full_like(init, self._init_scale)
            scale = deep_setattr(
                self.scales, name, PyroParam(scale_init, self.scale_constraint, event_dim)
            )
            plans.append((site, loc, scale))
        for name in sites:
            own = ids[name]
            batch, rank = own.shape[:-1], own.shape[-1]
            index = [own] + [_factor_ids(ids[u], batch) for u in upstreams.get(name, [])]
            index = torch.cat(index, -1)  # batch + (D,)
            dim = index.shape[-1]
            init = self._init_loc_value
            eye = torch.eye(dim, rank, dtype=init.dtype, device=init.device)
            noise = 0.03 * torch.randn(batch + (dim, rank), dtype=init.dtype, device=init.device)
            prec_sqrt = eye + noise * (1 - eye)  # a little asymmetry breaks ties
            white = torch.zeros(batch + (rank,), dtype=init.dtype, device=init.device)
            w = deep_setattr(self.white_vecs, name, PyroParam(white, constraints.real))
            p = deep_setattr(self.prec_sqrts, name, PyroParam(prec_sqrt, constraints.real))
            factors.append((index.to(init.device), w, p))
        self._plans, self._factors = plans, factors

    def get_posterior(self, *args, **kwargs):
        """The Gaussian over the whitened latents: precision ``sum P P^T`` (scattered to
        each factor's variables), mean ``precision^-1 sum P w``."""
        init = self._init_loc_value
        n = init.shape[0]
        precision = init.new_zeros(n, n)
        info = init.new_zeros(n)
        for index, w, p in self._factors:
            white, prec_sqrt = getattr(*w), getattr(*p)
            dim, rank = prec_sqrt.shape[-2:]
            flat_index = index.reshape(-1, dim)
            block = (prec_sqrt @ prec_sqrt.mT).reshape(-1, dim, dim)
            precision = precision.index_put(
                (flat_index[:, :, None], flat_index[:, None, :]), block, accumulate=True
            )
            vec = (prec_sqrt @ white.unsqueeze(-1)).reshape(-1, dim)
            info = info.index_put((flat_index,), vec, accumulate=True)
        chol = torch.linalg.cholesky(precision)
        mean = torch.cholesky_solve(info.unsqueeze(-1), chol).squeeze(-1)
        return MultivariateNormal(mean, precision_matrix=precision)

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        # Read once per call, in Pyro's order: every loc and scale, then the factors.
        loc_scales = [(getattr(*loc), getattr(*scale)) for _, loc, scale in self._plans]
        latent = self.sample_latent(*args, **kwargs)
        skip_jacobian = _mask_is_false()
        result = {}
        pieces = dict((site.name, x) for site, x in self._unpack_latent(latent))
        for (site, _, _), (loc_value, scale_value) in zip(self._plans, loc_scales):
            unconstrained = loc_value + scale_value * pieces[site.name]
            value, log_density = site.constrain(unconstrained, skip_jacobian)
            if not skip_jacobian:
                # x -> loc + scale * x has log|det| = sum(log scale).
                log_scale = sum_rightmost(scale_value.log(), site.unconstrained_event_dim)
                log_density = log_density - log_scale
            with ExitStack() as stack:
                self._enter_plates(stack, site)
                result[site.name] = pyro.sample(
                    site.name, Delta(value, log_density=log_density, event_dim=site.event_dim)
                )
        return result

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """{site: the constrained image of loc + scale * (the Gaussian's mean)}."""
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            mean = self.get_posterior().mean
            return self._values(mean, torch.Size())

    def _values(self, latent, sample_shape) -> Dict[str, torch.Tensor]:
        pieces = dict((site.name, x) for site, x in self._unpack_latent(latent, sample_shape))
        out = {}
        for site, loc, scale in self._plans:
            u = getattr(*loc) + getattr(*scale) * pieces[site.name]
            out[site.name] = site.constrain(u, True)[0].detach()
        return out

    def quantiles(self, quantiles, *args, **kwargs):
        raise NotImplementedError(
            "AutoGaussian has no quantiles (as in Pyro): use sample_posterior or Predictive"
        )

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        shape = torch.Size(sample_shape)
        with torch.no_grad(), self._pyro_context, BlockMessenger():
            return self._values(self.get_posterior().sample(shape), shape)


def _factor_ids(upstream: torch.Tensor, batch: torch.Size) -> torch.Tensor:
    """The global ids of an upstream site's elements in each factor of a site with plate
    batch ``batch``: shared plates index alike; the upstream's other plates are all in."""
    up_batch = upstream.shape[:-1]
    n = max(len(up_batch), len(batch))
    up = upstream.reshape((1,) * (n - len(up_batch)) + upstream.shape)
    own = (1,) * (n - len(batch)) + tuple(batch)
    fold = [d for d in range(n) if own[d] == 1 and up.shape[d] > 1]
    keep = [d for d in range(n) if d not in fold]
    up = up.permute(keep + fold + [n]).reshape(tuple(up.shape[d] for d in keep) + (-1,))
    target = tuple(own[d] for d in keep)
    return up.expand(target + up.shape[-1:]).reshape(tuple(batch) + up.shape[-1:])


__all__: List[str] = ["AutoGaussian", "AutoGaussianDense"]
