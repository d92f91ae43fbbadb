"""``AutoDiscreteParallel``: a mean-field guide over a model's discrete latent sites,
each drawn from a learned distribution of its family and enumerated in parallel."""

from contextlib import ExitStack
from typing import Callable, Dict, NamedTuple, Optional

import torch

from ... import primitives as pyro
from ...distributions import Bernoulli, Categorical, OneHotCategorical, constraints
from ...nn.module import PyroParam
from .guides import AutoGuide, deep_setattr, periodic_repeat

# family -> (probs constraint, probs event dims beyond the site's batch)
_FAMILIES = {
    Categorical: (constraints.simplex, 1),
    OneHotCategorical: (constraints.simplex, 1),
    Bernoulli: (constraints.unit_interval, 0),
}


def _family(fn) -> Optional[type]:
    for family in _FAMILIES:
        if isinstance(fn, family):
            return family
    return None


class _DiscreteSite(NamedTuple):
    name: str
    family: type
    frames: tuple  # vectorized plate frames (what ``AutoGuide._enter_plates`` reads)
    probs_event_dim: int


class AutoDiscreteParallel(AutoGuide):
    """Mean-field guide for discrete sites (``Categorical``, ``OneHotCategorical``,
    ``Bernoulli``): one learned ``probs`` per site, initialized at the prior's, each site
    marked ``infer={"enumerate": "parallel"}`` for ``TraceEnum_ELBO``.

    Params: ``AutoDiscreteParallel.{site}_probs`` (simplex, or unit interval for
    ``Bernoulli``), at the full size of subsampled plates.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite import poutine
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     pyrolite.sample("c", dist.Categorical(torch.tensor([0.2, 0.8])))
    >>> guide = AutoDiscreteParallel(model)
    >>> tr = poutine.trace(guide).get_trace()
    >>> tr.nodes["c"]["infer"], pyrolite.param("AutoDiscreteParallel.c_probs")
    ({'enumerate': 'parallel'}, tensor([0.2000, 0.8000], grad_fn=<DivBackward0>))
    """

    def __init__(self, model: Callable, *, create_plates: Optional[Callable] = None):
        super().__init__(model, create_plates=create_plates)

    def _setup_sites(self) -> None:
        self._sites = {}
        self._discrete: Dict[str, _DiscreteSite] = {}
        readers = []
        for name, site in self.prototype_trace.nodes.items():
            fn = site["fn"]
            if not fn.support.is_discrete:
                raise NotImplementedError(
                    f'Expected sample site "{name}" to be discrete and configured for '
                    f"parallel enumeration; it is a {type(fn).__name__} with continuous "
                    "support. Guide continuous sites with another autoguide in an "
                    "AutoGuideList (hide them here with poutine.block)."
                )
            family = _family(fn)
            if family is None:
                raise NotImplementedError(
                    f"{type(fn).__name__} is not supported (site '{name}'): "
                    "AutoDiscreteParallel guides Categorical, OneHotCategorical and "
                    "Bernoulli sites"
                )
            frames = tuple(f for f in site["cond_indep_stack"] if f.dim is not None)
            constraint, probs_event_dim = _FAMILIES[family]
            probs = fn.probs.detach()
            batch = list(fn.batch_shape)
            for frame in frames:
                if -frame.dim > len(batch):
                    batch = [1] * (-frame.dim - len(batch)) + batch
                if batch[frame.dim] == 1:
                    batch[frame.dim] = frame.size
            probs = probs.expand(torch.Size(batch) + probs.shape[probs.dim() - probs_event_dim :])
            for frame in frames:
                full = frame.full_size if frame.full_size is not None else frame.size
                if full != frame.size:
                    probs = periodic_repeat(probs, full, frame.dim - probs_event_dim)
            record = _DiscreteSite(name, family, frames, probs_event_dim)
            param = PyroParam(probs.contiguous(), constraint, probs_event_dim)
            readers.append((record, *deep_setattr(self, f"{name}_probs", param)))
            self._discrete[name] = record
        self._readers = readers

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        result = {}
        for site, owner, attr in self._readers:
            probs = self._subsample(getattr(owner, attr), site, site.probs_event_dim)
            with ExitStack() as stack:
                self._enter_plates(stack, site)
                result[site.name] = pyro.sample(
                    site.name, site.family(probs=probs), infer={"enumerate": "parallel"}
                )
        return result
