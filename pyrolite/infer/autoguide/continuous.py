"""Flat autoguides: one joint distribution over the concatenated unconstrained latents.

The guide draws one auxiliary vector ``_{name}_latent`` (``name`` is the module's name,
e.g. ``AutoDiagonalNormal``) from ``get_posterior()``, cuts it into the model's sites,
maps each piece through ``biject_to(support)`` and records it as a point mass whose
log-density is ``-log|det J|`` of that map, so the guide's total ``log q`` is the density
of the constrained values. Params are module attributes, as in Pyro: ``loc`` plus each
family's scale params (``scale``, ``scale_tril``, ``cov_factor``).
"""

from contextlib import ExitStack
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn
from torch.distributions import Transform

from ... import primitives as pyro
from ...distributions import (
    Delta,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    TransformedDistribution,
    constraints,
)
from ...distributions.transforms import AffineTransform, LowerCholeskyAffine
from ...nn.module import PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.condition_messenger import ConditionMessenger
from ...poutine.plate_messenger import CondIndepStackFrame
from ...poutine.trace_messenger import TraceMessenger
from .guides import AutoGuide, LatentSite, _check_init_scale, _mask_is_false
from .initialization import init_to_median, init_to_value


class AutoContinuous(AutoGuide):
    """Base of the flat guides: ``get_posterior`` is ``get_base_dist()`` pushed through
    ``get_transform()``; subclasses override either, and ``_loc_scale``.

    :param model: the model.
    :param init_loc_fn: init strategy (see ``initialization``), applied per site.
    """

    def __init__(
        self,
        model: Callable,
        init_loc_fn: Callable = init_to_median,
        *,
        create_plates: Optional[Callable] = None,
    ):
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn

    def _setup_sites(self) -> None:
        super()._setup_sites()
        if not self._sites:
            raise ValueError(
                f"{type(self).__name__} found no latent sites in the model; check that the "
                "model samples something that is not observed (and not blocked)."
            )
        self._slices: Dict[str, Tuple[int, int]] = {}
        self._site_shapes: Dict[tuple, torch.Size] = {}  # (site, batch shape) -> shape
        pos = 0
        for name, site in self._sites.items():
            size = site.unconstrained_shape.numel()
            self._slices[name] = (pos, pos + size)
            pos += size
        self.latent_dim = pos
        self._init_loc_value = torch.cat(
            [site.init_unconstrained.reshape(-1) for site in self._sites.values()]
        )

    def _check_can_subsample(self, name: str, frame: CondIndepStackFrame) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} cannot guide site '{name}', a local latent in the "
            f"subsampled plate('{frame.name}') (size {frame.full_size}, subsample_size "
            f"{frame.size}): a flat guide keeps one joint vector over all latents. Use "
            "AutoNormal or AutoDelta for such sites (e.g. in an AutoGuideList, with "
            "poutine.block), or do not subsample that plate."
        )

    def _init_loc(self) -> torch.Tensor:
        """The init values of all sites, unconstrained and concatenated."""
        return self._init_loc_value.clone()

    def _require_setup(self) -> None:
        if self.prototype_trace is None:
            raise RuntimeError(
                f"{type(self).__name__} has no params yet: call the guide once (e.g. one "
                "svi.step(*args) or guide(*args)) so it can inspect the model"
            )

    # --- the distribution ---------------------------------------------------------------

    def get_base_dist(self):
        """The standard Normal over the latent vector that ``get_transform`` maps."""
        self._require_setup()
        zeros = torch.zeros_like(self._init_loc_value)
        return Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def get_transform(self, *args, **kwargs) -> Transform:
        """The map from ``get_base_dist()`` draws to the guide's latent vector."""
        raise NotImplementedError

    def get_posterior(self, *args, **kwargs):
        """The guide's distribution over the unconstrained latent vector."""
        return TransformedDistribution(self.get_base_dist(), self.get_transform(*args, **kwargs))

    def _loc_scale(self, *args, **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        """Marginal mean and standard deviation of each unconstrained coordinate."""
        raise NotImplementedError

    # --- sampling -----------------------------------------------------------------------

    def sample_latent(self, *args, **kwargs) -> torch.Tensor:
        """One draw of the latent vector, recorded as the auxiliary ``_{name}_latent`` site."""
        return pyro.sample(
            f"_{self._pyro_name}_latent",
            self.get_posterior(*args, **kwargs),
            infer={"is_auxiliary": True},
        )

    def _unpack_latent(
        self, latent: torch.Tensor, sample_shape: Optional[torch.Size] = None
    ) -> Iterator[Tuple[LatentSite, torch.Tensor]]:
        """Each site's piece of ``latent``, in the site's unconstrained shape.

        Leading dims of ``latent`` are plates outside the prototype (vectorized particles,
        right-aligned against the site's own plate dims), or, given ``sample_shape``,
        sample dims put in front of the site's shape.
        """
        batch_shape = latent.shape[:-1]
        for name, site in self._sites.items():
            start, stop = self._slices[name]
            if sample_shape is not None:
                shape = sample_shape + site.unconstrained_shape
            else:
                shape = self._site_shapes.get((name, batch_shape))
                if shape is None:
                    event = (1,) * site.unconstrained_event_dim
                    shape = torch.broadcast_shapes(site.unconstrained_shape, batch_shape + event)
                    self._site_shapes[(name, batch_shape)] = shape
            yield site, latent[..., start:stop].reshape(shape)

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        latent = self.sample_latent(*args, **kwargs)
        skip_jacobian = _mask_is_false()
        result = {}
        for site, unconstrained in self._unpack_latent(latent):
            value, log_density = site.constrain(unconstrained, skip_jacobian)
            point = Delta(value, log_density=log_density, event_dim=site.event_dim)
            if site.frames:
                with ExitStack() as stack:
                    self._enter_plates(stack, site)
                    result[site.name] = pyro.sample(site.name, point)
            else:
                result[site.name] = pyro.sample(site.name, point)
        return result

    def _constrained(self, latent: torch.Tensor, sample_shape=None) -> Dict[str, torch.Tensor]:
        return {
            site.name: site.constrain(u, True)[0].detach()
            for site, u in self._unpack_latent(latent, sample_shape)
        }

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            return self._constrained(self._loc_scale(*args, **kwargs)[0], torch.Size())

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            loc, scale = self._loc_scale(*args, **kwargs)
            qs = self._quantile_levels(quantiles, loc)
            if bool((scale == 0).all()):
                latent = loc.expand(qs.shape + loc.shape)
            else:
                latent = Normal(loc, scale).icdf(qs.unsqueeze(-1))
            return self._constrained(latent, qs.shape)

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        shape = torch.Size(sample_shape)
        with torch.no_grad(), self._pyro_context:
            latent = self.get_posterior(*args, **kwargs).sample(shape)
            return self._constrained(latent, shape)


class AutoDiagonalNormal(AutoContinuous):
    """A diagonal Normal over the unconstrained latents: params ``loc`` (an
    ``nn.Parameter``) and ``scale`` (``softplus_positive``).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.HalfNormal(torch.ones(2)).to_event(1))
    >>> guide = AutoDiagonalNormal(model, init_scale=0.2)
    >>> sorted(guide().keys())
    ['a', 'b']
    >>> {k: tuple(v.shape) for k, v in pyrolite.get_param_store().items()}
    {'AutoDiagonalNormal.loc': (3,), 'AutoDiagonalNormal.scale': (3,)}
    >>> guide.scale
    tensor([0.2000, 0.2000, 0.2000], grad_fn=<SoftplusBackward0>)
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
        *,
        create_plates: Optional[Callable] = None,
    ):
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())
        self.scale = PyroParam(
            torch.full_like(self._init_loc_value, self._init_scale), self.scale_constraint
        )

    def get_transform(self, *args, **kwargs) -> Transform:
        return AffineTransform(self.loc, self.scale, event_dim=1)

    def get_posterior(self, *args, **kwargs):
        return Normal(self.loc, self.scale).to_event(1)

    def _loc_scale(self, *args, **kwargs):
        return self.loc, self.scale


class AutoMultivariateNormal(AutoContinuous):
    """A full-covariance Normal over the unconstrained latents, parameterized as in Pyro
    1.9: ``loc``, ``scale`` (``softplus_positive``) and ``scale_tril``
    (``unit_lower_cholesky``); the covariance's Cholesky factor is
    ``scale[:, None] * scale_tril``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("xy", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoMultivariateNormal(model, init_scale=0.5)
    >>> _ = guide()
    >>> guide.get_posterior().scale_tril.detach()
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]])
    >>> sorted(pyrolite.get_param_store().keys())
    ['AutoMultivariateNormal.loc', 'AutoMultivariateNormal.scale', \
'AutoMultivariateNormal.scale_tril']
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.unit_lower_cholesky

    def __init__(
        self,
        model: Callable,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
        *,
        create_plates: Optional[Callable] = None,
    ):
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        init = self._init_loc_value
        self.loc = nn.Parameter(self._init_loc())
        self.scale = PyroParam(torch.full_like(init, self._init_scale), self.scale_constraint)
        eye = torch.eye(init.shape[0], dtype=init.dtype, device=init.device)
        self.scale_tril = PyroParam(eye, self.scale_tril_constraint)

    def _scale_tril(self) -> torch.Tensor:
        return self.scale[..., None] * self.scale_tril

    def get_transform(self, *args, **kwargs) -> Transform:
        return LowerCholeskyAffine(self.loc, self._scale_tril())

    def get_posterior(self, *args, **kwargs):
        return MultivariateNormal(self.loc, scale_tril=self._scale_tril())

    def _loc_scale(self, *args, **kwargs):
        return self.loc, self._scale_tril().pow(2).sum(-1).sqrt()


class AutoLowRankMultivariateNormal(AutoContinuous):
    """A Normal with covariance ``D (W W^T + I) D`` over the unconstrained latents, with
    ``D = diag(scale)``, as in Pyro 1.9.

    Params: ``loc``, ``scale`` (``softplus_positive``, init ``init_scale / sqrt(2)``) and
    ``cov_factor`` (``W``, ``latent_dim x rank``, init ``randn / sqrt(rank)``; ``rank``
    defaults to ``round(sqrt(latent_dim))``), so the expected initial covariance is
    ``init_scale**2 * I``; a zero ``W`` would be a saddle point.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> guide = AutoLowRankMultivariateNormal(model)
    >>> _ = guide()
    >>> tuple(guide.cov_factor.shape), tuple(guide.scale.shape)
    ((4, 2), (4,))
    """

    scale_constraint = constraints.softplus_positive

    def __init__(
        self,
        model: Callable,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
        rank: Optional[int] = None,
        *,
        create_plates: Optional[Callable] = None,
    ):
        if rank is not None and (not isinstance(rank, int) or rank < 1):
            raise ValueError(
                f"AutoLowRankMultivariateNormal: rank must be a positive int, got {rank!r}"
            )
        super().__init__(model, init_loc_fn, create_plates=create_plates)
        self._init_scale = _check_init_scale(type(self).__name__, init_scale)
        self.rank = rank

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        if self.rank is None:
            self.rank = max(1, int(round(self.latent_dim**0.5)))
        init = self._init_loc_value
        self.loc = nn.Parameter(self._init_loc())
        self.scale = PyroParam(
            torch.full_like(init, self._init_scale * 0.5**0.5), self.scale_constraint
        )
        factor = torch.randn(init.shape[0], self.rank, dtype=init.dtype, device=init.device)
        self.cov_factor = nn.Parameter(factor * self.rank**-0.5)

    def get_posterior(self, *args, **kwargs):
        loc, scale = self.loc, self.scale
        return LowRankMultivariateNormal(loc, self.cov_factor * scale[..., None], scale**2)

    def _loc_scale(self, *args, **kwargs):
        loc, scale = self.loc, self.scale
        return loc, scale * (1.0 + self.cov_factor.pow(2).sum(-1)).sqrt()


class AutoLaplaceApproximation(AutoContinuous):
    """MAP in the unconstrained space, then a Laplace approximation around it.

    Trained like ``AutoDelta`` (param ``loc``; the point mass's log-density holds the
    Jacobian, so the MAP is of the density of the unconstrained latents).
    ``laplace_approximation(*args)`` returns an ``AutoMultivariateNormal`` whose ``loc``,
    ``scale`` and ``scale_tril`` are fixed tensors (not params) giving the inverse
    Hessian of the negative log-joint at the MAP as covariance.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(1.0, 0.5))
    >>> guide = AutoLaplaceApproximation(model)
    >>> _ = guide()
    >>> laplace = guide.laplace_approximation()
    >>> laplace.get_posterior().scale_tril  # exact for a Gaussian: the prior's scale
    tensor([[0.5000]])
    """

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        self.loc = nn.Parameter(self._init_loc())

    def get_posterior(self, *args, **kwargs):
        return Delta(self.loc, event_dim=1)

    def _loc_scale(self, *args, **kwargs):
        loc = self.loc
        return loc, torch.zeros_like(loc)

    def _log_joint(self, latent: torch.Tensor, args, kwargs) -> torch.Tensor:
        """``log p(T(u)) + log|det dT/du|``: the model's log-density of the unconstrained ``u``."""
        values, log_det = {}, 0.0
        for site, u in self._unpack_latent(latent, torch.Size()):
            value, log_density = site.constrain(u)
            values[site.name] = value
            log_det = log_det - (log_density.sum() if torch.is_tensor(log_density) else 0.0)
        tracer = TraceMessenger()
        with BlockMessenger(), tracer, ConditionMessenger(values):
            self.model(*args, **kwargs)
        return tracer.trace.log_prob_sum() + log_det

    def laplace_approximation(self, *args, **kwargs) -> AutoMultivariateNormal:
        self._ensure_setup(args, kwargs)
        with self._pyro_context:
            loc = self.loc.detach()
        hessian = torch.autograd.functional.hessian(
            lambda u: -self._log_joint(u, args, kwargs), loc
        )
        hessian = (hessian + hessian.T) / 2
        chol, info = torch.linalg.cholesky_ex(hessian)
        if info.item() != 0:
            raise ValueError(
                "The Hessian of the negative log-joint at the MAP is not positive definite, so "
                "there is no Laplace approximation there: train the MAP longer (or check the "
                "posterior is proper)."
            )
        cov_tril = torch.linalg.cholesky(torch.cholesky_inverse(chol))
        gaussian = AutoMultivariateNormal(
            self.model,
            init_loc_fn=init_to_value(values=self.median(*args, **kwargs)),
            create_plates=self.create_plates,
        )
        gaussian._setup_prototype(*args, **kwargs)
        # Fixed tensors in place of the params: the approximation is not trained further.
        # As in Pyro, ``scale`` holds the marginal sds, so ``scale_tril`` is not unit-diagonal.
        scale = cov_tril.pow(2).sum(-1).sqrt()
        for name, value in (
            ("loc", loc),
            ("scale", scale),
            ("scale_tril", cov_tril / scale[:, None]),
        ):
            delattr(gaussian, name)
            setattr(gaussian, name, value)
        return gaussian
