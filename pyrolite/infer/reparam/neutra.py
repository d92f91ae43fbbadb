"""``NeuTraReparam``: sample all of a model's latents through a trained flow guide."""

from typing import Callable, Dict, Optional

import torch
from torch.distributions import biject_to

from ... import primitives as pyro
from ...distributions.delta import Delta
from ...distributions.util import sum_rightmost
from ...poutine.reparam_messenger import ReparamMessenger
from ...poutine.runtime import get_mask
from .reparam import Reparam


class NeuTraReparam(Reparam):
    """Neural transport: the first latent site of the guide's model draws one
    ``{name}_shared_latent`` from ``guide.get_base_dist()`` (a site adding nothing), maps
    it by ``guide.get_transform()`` and every latent site takes its part of the image,
    a ``Delta`` carrying the model density and the Jacobian. The result is a model
    whose geometry the (trained) ``AutoContinuous`` guide has whitened, for HMC or SVI.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> from pyrolite.infer.autoguide.continuous import AutoDiagonalNormal
    >>> def model():
    ...     pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.LogNormal(0.0, 1.0))
    >>> guide = AutoDiagonalNormal(model)
    >>> _ = guide()
    >>> neutra = NeuTraReparam(guide)
    >>> tr = poutine.trace(neutra.reparam(model)).get_trace()
    >>> [n for n in tr.nodes if tr.nodes[n]["type"] == "sample"]
    ['a_shared_latent', 'a', 'b']
    """

    def __init__(self, guide):
        from ..autoguide.continuous import AutoContinuous

        if not isinstance(guide, AutoContinuous):
            raise TypeError(
                f"NeuTraReparam expects an AutoContinuous guide, got {type(guide).__name__}"
            )
        if getattr(guide, "prototype_trace", None) is None:
            raise ValueError(
                "NeuTraReparam needs a set-up guide: call it (or train it) once first."
            )
        self.guide = guide
        self.transform = None
        self.x_unconstrained: Dict[str, tuple] = {}

    def _reparam_config(self, site: dict) -> Optional["NeuTraReparam"]:
        if site["name"] in self.guide.prototype_trace.nodes:
            return self
        return None

    def reparam(self, fn: Optional[Callable] = None):
        """``poutine.reparam(fn, config)`` with this reparameterizer at the guide's sites."""
        msngr = ReparamMessenger(self._reparam_config)
        return msngr if fn is None else msngr(fn)

    def apply(self, msg):
        name, fn, is_observed = msg["name"], msg["fn"], msg["is_observed"]
        if name not in self.guide.prototype_trace.nodes:
            return {"fn": fn, "value": msg["value"], "is_observed": is_observed}
        if is_observed:
            raise NotImplementedError(
                f"At pyrolite.sample({name!r}, ...), NeuTraReparam does not support observe "
                "statements; leave observed sites out of the guide."
            )
        log_density = 0.0
        compute_density = get_mask() is not False
        if name not in self.x_unconstrained:  # the first site draws the shared latent
            try:
                self.transform = self.guide.get_transform()
            except (NotImplementedError, TypeError) as e:
                raise ValueError(
                    "NeuTraReparam only supports guides that implement a get_transform() "
                    "method that does not depend on the model's *args, **kwargs"
                ) from e
            z = pyro.sample(f"{name}_shared_latent", self.guide.get_base_dist().mask(False))
            x_unconstrained = self.transform(z)
            if compute_density:
                log_density = self.transform.log_abs_det_jacobian(z, x_unconstrained)
            self.x_unconstrained = {
                site.name: (site, value)
                for site, value in self.guide._unpack_latent(x_unconstrained)
            }
        site, unconstrained = self.x_unconstrained.pop(name)
        transform = biject_to(fn.support)
        value = transform(unconstrained)
        if compute_density:
            logdet = transform.log_abs_det_jacobian(unconstrained, value)
            logdet = sum_rightmost(logdet, logdet.dim() - value.dim() + fn.event_dim)
            log_density = log_density + fn.log_prob(value) + logdet
        new_fn = Delta(value, log_density, event_dim=fn.event_dim)
        return {"fn": new_fn, "value": value, "is_observed": True}

    def transform_sample(self, latent: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Map draws of the base latent (e.g. from MCMC on the reparameterized model) to
        the model's constrained site values."""
        x_unconstrained = self.transform(latent)
        return {
            site.name: site.transform(value)
            for site, value in self.guide._unpack_latent(x_unconstrained)
        }
