"""``Trace_MMD``: the MMD-VAE (InfoVAE) loss, as Pyro's ``Trace_MMD``.

``-E_q[log p(x | z)] + mmd_scale * MMD(q(z), p(z))`` per latent site, with the MMD a
V-statistic over the particles (each particle's value flattened to one row): a rule on the
ELBO pipeline whose ``combine`` pools every particle's draws before taking the MMD.
"""

import numbers
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import torch

from ..poutine.block_messenger import BlockMessenger
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace
from .elbo import ELBO

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _Particle(NamedTuple):
    log_likelihood: torch.Tensor  # observed sites' log-probs, summed (over particles too)
    draws: Tuple[Tuple[str, torch.Tensor, torch.Tensor], ...]  # (site, guide rows, prior rows)


def mmd(kernel: Kernel, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The (biased, V-statistic) squared MMD of the rows of ``x`` and ``z``."""
    return kernel(x, x).mean() + kernel(z, z).mean() - 2.0 * kernel(x, z).mean()


class Trace_MMD(ELBO):
    """MMD between the guide's and the prior's latents in place of the ELBO's KL.

    :param kernel: a callable ``kernel(X, Z) -> Gram matrix`` on rows (e.g. a
        ``pyro.contrib.gp.kernels`` kernel), or a dict mapping latent site names to such.
    :param mmd_scale: weight of the MMD terms: a float, or a dict site name -> float.
    :param num_particles: particles pooled into each MMD estimate (use many).
    :param vectorize_particles: draw the particles at once (recommended; the default).

    The prior draws come from one run of the model on its own per particle (so each
    site's draws are from its marginal prior); no gradient flows through them.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def rbf(X, Z):
    ...     return torch.exp(-0.5 * torch.cdist(X, Z) ** 2)
    >>> def model():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     pyrolite.sample("z", dist.Normal(0.0, 1.0))
    >>> _ = pyrolite.set_rng_seed(0)
    >>> abs(Trace_MMD(rbf, num_particles=2000).loss(model, guide)) < 1e-3  # q == p
    True
    """

    log_probs = "sums"
    guide_log_probs = "none"

    def __init__(
        self,
        kernel: Union[Kernel, Dict[str, Kernel]],
        mmd_scale: Union[float, Dict[str, float]] = 1,
        num_particles: int = 10,
        max_plate_nesting: float = float("inf"),
        max_iarange_nesting: Optional[int] = None,
        vectorize_particles: bool = True,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        retain_graph: Optional[bool] = None,
    ):
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=max_plate_nesting,
            max_iarange_nesting=max_iarange_nesting,
            vectorize_particles=vectorize_particles,
            strict_enumeration_warning=strict_enumeration_warning,
            ignore_jit_warnings=ignore_jit_warnings,
            retain_graph=retain_graph,
        )
        self.kernel = kernel
        self.mmd_scale = mmd_scale

    @property
    def kernel(self) -> Union[Kernel, Dict[str, Kernel]]:
        return self._kernel

    @kernel.setter
    def kernel(self, kernel) -> None:
        if isinstance(kernel, dict):
            bad = sorted(str(k) for k, v in kernel.items() if not callable(v))
            if bad:
                raise TypeError(
                    f"Trace_MMD: `kernel` values should be callables kernel(X, Z) -> Gram "
                    f"matrix; those of {bad} are not"
                )
        elif not callable(kernel):
            raise TypeError(
                "Trace_MMD: `kernel` should be a callable kernel(X, Z) -> Gram matrix (e.g. "
                f"pyro.contrib.gp.kernels.RBF), or a dict of them, got {kernel!r}"
            )
        self._kernel = kernel

    @property
    def mmd_scale(self) -> Union[float, Dict[str, float]]:
        return self._mmd_scale

    @mmd_scale.setter
    def mmd_scale(self, mmd_scale) -> None:
        if isinstance(mmd_scale, dict):
            ok = all(isinstance(v, numbers.Number) for v in mmd_scale.values())
        else:
            ok = isinstance(mmd_scale, numbers.Number)
        if not ok:
            raise TypeError(
                f"Trace_MMD: `mmd_scale` should be either float, or a dict of floats, got "
                f"{mmd_scale!r}"
            )
        self._mmd_scale = mmd_scale

    def _for_site(self, option, what: str, name: str):
        if not isinstance(option, dict):
            return option
        if name not in option:
            raise KeyError(
                f"Trace_MMD: the `{what}` dict has no entry for latent site '{name}' (it has "
                f"{sorted(option)}); add one"
            )
        return option[name]

    def particle(self, plan, model_trace: Trace, guide_trace: Trace) -> _Particle:
        rows = self.num_particles if self.vectorized else 1
        # The MMD compares q's marginal with the prior's: the prior draws come from a run
        # of the model on its own (ancestral sampling), not replayed on the guide's values.
        model, _, args, kwargs = self._program
        with torch.no_grad(), BlockMessenger():
            prior_trace = run_traced(model, args, kwargs)
        log_likelihood = 0.0
        draws = []
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                log_likelihood = log_likelihood + site["log_prob_sum"]
            elif name in guide_trace.nodes:
                q = guide_trace.nodes[name]["value"].reshape(rows, -1)
                p = prior_trace.nodes[name]["value"].reshape(rows, -1)
                draws.append((name, q, p))
        return _Particle(torch.as_tensor(log_likelihood), tuple(draws))

    def combine(self, results: List[_Particle]) -> Tuple[torch.Tensor, torch.Tensor]:
        log_likelihood = sum(r.log_likelihood for r in results) / self.num_particles
        penalty = 0.0
        for i, (name, _, _) in enumerate(results[0].draws):
            q = torch.cat([r.draws[i][1] for r in results])
            p = torch.cat([r.draws[i][2] for r in results])
            kernel = self._for_site(self.kernel, "kernel", name)
            scale = self._for_site(self.mmd_scale, "mmd_scale", name)
            penalty = penalty + scale * mmd(kernel, p, q)
        loss = -log_likelihood + penalty
        return loss.detach(), loss
