"""Flat autoguides: one joint distribution over the concatenated unconstrained latents.

The guide draws one auxiliary vector ``_{prefix}_latent`` from ``get_posterior()``, cuts
it into the model's sites, maps each piece through ``biject_to(support)`` and records it
as a point mass whose log-density is ``-log|det J|`` of that map, so the guide's total
``log q`` is the density of the constrained values. Params: ``{prefix}_loc`` plus the
scale params of each family (``{prefix}_scale``, ``{prefix}_scale_tril``,
``{prefix}_cov_factor`` / ``{prefix}_cov_diag``).
"""

from contextlib import ExitStack
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch

from ... import primitives as pyro
from ...distributions import (
    Delta,
    LowRankMultivariateNormal,
    MultivariateNormal,
    Normal,
    constraints,
)
from ...params import param_store as _param_store
from ...poutine.block_messenger import BlockMessenger
from ...poutine.condition_messenger import ConditionMessenger
from ...poutine.plate_messenger import CondIndepStackFrame
from ...poutine.trace_messenger import TraceMessenger
from .guides import AutoGuide, LatentSite, _mask_is_false
from .initialization import init_to_median, init_to_value


class AutoContinuous(AutoGuide):
    """Base of the flat guides; subclasses define ``get_posterior`` and ``_loc_scale``."""

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
        self._latent_name = f"_{self.prefix}_latent"

    def _check_can_subsample(self, name: str, frame: CondIndepStackFrame) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} cannot guide site '{name}', a local latent in the "
            f"subsampled plate('{frame.name}') (size {frame.full_size}, subsample_size "
            f"{frame.size}): a flat guide keeps one joint vector over all latents. Use "
            "AutoNormal or AutoDelta for such sites (e.g. in an AutoGuideList, with "
            "poutine.block), or do not subsample that plate."
        )

    # --- params -------------------------------------------------------------------------

    def _param(self, suffix: str, init, constraint=None) -> torch.Tensor:
        return pyro.param(f"{self.prefix}_{suffix}", init, constraint)

    def _loc_param(self) -> torch.Tensor:
        return self._param("loc", self._init_loc_value)

    def _stored(self, suffix: str) -> torch.Tensor:
        if self.prototype_trace is None:
            raise RuntimeError(
                f"{type(self).__name__} has no params yet: call the guide once (e.g. one "
                "svi.step(*args) or guide(*args)) so it can inspect the model"
            )
        return _param_store.get_param_store()[f"{self.prefix}_{suffix}"]

    @property
    def loc(self) -> torch.Tensor:
        """The current mean of the unconstrained latent vector."""
        return self._stored("loc")

    def get_posterior(self, *args, **kwargs):
        """The guide's distribution over the unconstrained latent vector."""
        raise NotImplementedError

    def _loc_scale(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Marginal mean and standard deviation of each unconstrained coordinate."""
        raise NotImplementedError

    # --- sampling -----------------------------------------------------------------------

    def sample_latent(self, *args, **kwargs) -> torch.Tensor:
        return pyro.sample(
            self._latent_name, self.get_posterior(*args, **kwargs), infer={"is_auxiliary": True}
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
        self._ensure_setup(args, kwargs)
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
        with torch.no_grad():
            return self._constrained(self._loc_scale()[0], torch.Size())

    def quantiles(self, quantiles, *args, **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        with torch.no_grad():
            loc, scale = self._loc_scale()
            qs = self._quantile_levels(quantiles, loc)
            if bool((scale == 0).all()):
                latent = loc.expand(qs.shape + loc.shape)
            else:
                latent = Normal(loc, scale).icdf(qs.unsqueeze(-1))
            return self._constrained(latent, qs.shape)

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        shape = torch.Size(sample_shape)
        with torch.no_grad():
            latent = self.get_posterior(*args, **kwargs).sample(shape)
            return self._constrained(latent, shape)


class AutoDiagonalNormal(AutoContinuous):
    """A diagonal Normal over the unconstrained latents: params ``{prefix}_loc`` and
    ``{prefix}_scale`` (``softplus_positive``).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.HalfNormal(torch.ones(2)).to_event(1))
    >>> guide = AutoDiagonalNormal(model, init_scale=0.2)
    >>> sorted(guide().keys())
    ['a', 'b']
    >>> {k: tuple(v.shape) for k, v in pyrolite.get_param_store().items()}
    {'auto_loc': (3,), 'auto_scale': (3,)}
    >>> guide.scale
    tensor([0.2000, 0.2000, 0.2000], grad_fn=<SoftplusBackward0>)
    """

    def _scale_param(self) -> torch.Tensor:
        return self._param(
            "scale",
            lambda: torch.full_like(self._init_loc_value, self._init_scale),
            constraints.softplus_positive,
        )

    @property
    def scale(self) -> torch.Tensor:
        return self._stored("scale")

    def get_posterior(self, *args, **kwargs):
        return Normal(self._loc_param(), self._scale_param()).to_event(1)

    def _loc_scale(self):
        return self._loc_param(), self._scale_param()


class AutoMultivariateNormal(AutoContinuous):
    """A full-covariance Normal over the unconstrained latents: params ``{prefix}_loc`` and
    ``{prefix}_scale_tril`` (``lower_cholesky``; covariance ``L @ L.T``).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("xy", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    >>> guide = AutoMultivariateNormal(model, init_scale=0.5)
    >>> _ = guide()
    >>> pyrolite.get_param_store()["auto_scale_tril"]
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]], grad_fn=<AddBackward0>)
    """

    def _scale_tril_param(self) -> torch.Tensor:
        return self._param(
            "scale_tril",
            lambda: torch.diag_embed(torch.full_like(self._init_loc_value, self._init_scale)),
            constraints.lower_cholesky,
        )

    @property
    def scale_tril(self) -> torch.Tensor:
        return self._stored("scale_tril")

    def get_posterior(self, *args, **kwargs):
        return MultivariateNormal(self._loc_param(), scale_tril=self._scale_tril_param())

    def _loc_scale(self):
        return self._loc_param(), self._scale_tril_param().pow(2).sum(-1).sqrt()


class AutoLowRankMultivariateNormal(AutoContinuous):
    """A Normal with covariance ``W @ W.T + diag(d)`` over the unconstrained latents.

    Params: ``{prefix}_loc``, ``{prefix}_cov_factor`` (``W``, shape ``latent_dim x rank``;
    ``rank`` defaults to ``round(sqrt(latent_dim))``) and ``{prefix}_cov_diag`` (``d``,
    ``softplus_positive``). At init ``W`` is random (a zero ``W`` is a saddle point) and
    the expected covariance is ``init_scale**2 * I``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(torch.zeros(4), 1.0).to_event(1))
    >>> guide = AutoLowRankMultivariateNormal(model)
    >>> _ = guide()
    >>> tuple(guide.cov_factor.shape), tuple(guide.cov_diag.shape)
    ((4, 2), (4,))
    """

    def __init__(
        self,
        model: Callable,
        *,
        prefix: str = "auto",
        create_plates: Optional[Callable] = None,
        init_loc_fn: Callable = init_to_median,
        init_scale: float = 0.1,
        rank: Optional[int] = None,
    ):
        if rank is not None and (not isinstance(rank, int) or rank < 1):
            raise ValueError(
                f"AutoLowRankMultivariateNormal: rank must be a positive int, got {rank!r}"
            )
        super().__init__(
            model,
            prefix=prefix,
            create_plates=create_plates,
            init_loc_fn=init_loc_fn,
            init_scale=init_scale,
        )
        self.rank = rank

    def _setup_sites(self) -> None:
        super()._setup_sites()
        if self.rank is None:
            self.rank = max(1, int(round(self.latent_dim**0.5)))

    def _cov_params(self) -> Tuple[torch.Tensor, torch.Tensor]:
        init = self._init_loc_value
        variance = 0.5 * self._init_scale**2
        factor = self._param(
            "cov_factor",
            lambda: (
                torch.randn(init.shape[0], self.rank, dtype=init.dtype, device=init.device)
                * (variance / self.rank) ** 0.5
            ),
        )
        diag = self._param(
            "cov_diag", lambda: torch.full_like(init, variance), constraints.softplus_positive
        )
        return factor, diag

    @property
    def cov_factor(self) -> torch.Tensor:
        return self._stored("cov_factor")

    @property
    def cov_diag(self) -> torch.Tensor:
        return self._stored("cov_diag")

    def get_posterior(self, *args, **kwargs):
        loc = self._loc_param()
        factor, diag = self._cov_params()
        return LowRankMultivariateNormal(loc, factor, diag)

    def _loc_scale(self):
        factor, diag = self._cov_params()
        return self._loc_param(), (diag + factor.pow(2).sum(-1)).sqrt()


class AutoLaplaceApproximation(AutoContinuous):
    """MAP in the unconstrained space, then a Laplace approximation around it.

    Trained like ``AutoDelta`` (param ``{prefix}_loc``; the point mass's log-density holds
    the Jacobian, so the MAP is of the density of the unconstrained latents).
    ``laplace_approximation(*args)`` returns an ``AutoMultivariateNormal`` with the
    same prefix whose ``{prefix}_scale_tril`` is the Cholesky factor of the inverse
    Hessian of the negative log-joint at the MAP.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(1.0, 0.5))
    >>> guide = AutoLaplaceApproximation(model)
    >>> _ = guide()
    >>> laplace = guide.laplace_approximation()
    >>> laplace.scale_tril  # exact for a Gaussian: the prior's scale
    tensor([[0.5000]], grad_fn=<AddBackward0>)
    """

    def __init__(
        self,
        model: Callable,
        *,
        prefix: str = "auto",
        create_plates: Optional[Callable] = None,
        init_loc_fn: Callable = init_to_median,
    ):
        super().__init__(model, prefix=prefix, create_plates=create_plates, init_loc_fn=init_loc_fn)

    def get_posterior(self, *args, **kwargs):
        return Delta(self._loc_param(), event_dim=1)

    def _loc_scale(self):
        loc = self._loc_param()
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
        loc = self._loc_param().detach()
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
        scale_tril = torch.linalg.cholesky(torch.cholesky_inverse(chol))
        gaussian = AutoMultivariateNormal(
            self.model,
            prefix=self.prefix,
            create_plates=self.create_plates,
            init_loc_fn=init_to_value(values=self.median(*args, **kwargs)),
        )
        gaussian._setup_prototype(*args, **kwargs)
        store = _param_store.get_param_store()
        for suffix, value, constraint in (
            ("loc", loc, constraints.real),
            ("scale_tril", scale_tril, constraints.lower_cholesky),
        ):
            name = f"{self.prefix}_{suffix}"
            if name in store:
                del store[name]
            store.setdefault(name, value, constraint)
        return gaussian
