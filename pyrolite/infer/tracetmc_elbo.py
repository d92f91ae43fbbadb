"""``TraceTMC_ELBO``: Tensor Monte Carlo (Aitchison 2018) by tensor variable elimination.

Sites marked ``infer={"enumerate": "parallel", "num_samples": k}`` take ``k`` draws along
an enumeration dim, sites marked ``{"enumerate": "parallel"}`` their whole support; the
estimate ``log (1/k ... Σ p(x, z) / q(z))`` over every joint value is contracted exactly
with :mod:`pyrolite.ops.contract`, laid out by :func:`pyrolite.infer.enum.enum_layout`
(the same machinery as ``TraceEnum_ELBO``, whose trace source this estimator uses).
"""

import math
import warnings
from typing import Callable, List

import torch

from ..distributions.util import is_identically_zero, scale_and_mask
from ..ops.contract import Contraction
from ..poutine.messenger import Messenger
from ..poutine.runtime import Message
from ..poutine.trace_struct import Trace
from .elbo import ELBO, TracePair, sum_terms
from .enum import enum_layout, factor_tensors, positional
from .traceenum_elbo import TraceEnum_ELBO

# Suffix of the factor that divides a guide-proposed site's model term by its proposal.
_PROPOSAL = "/tmc_proposal"
# Prefix of the zero factor that declares a guide-enumerated variable (owns its dim).
_DECLARE = "tmc_variable/"


class TraceTMC_ELBO(TraceEnum_ELBO):
    """Tensor Monte Carlo estimate of ``log p(x)``, as Pyro's ``TraceTMC_ELBO``.

    A guide site drawn ``k`` times contributes the factor ``1 / (k q(z))`` to each of its
    values, a model site drawn from its prior (``num_samples`` on a model-only site)
    ``1/k``, a site enumerated over its support nothing but its model term: summing every
    joint value gives an unbiased estimate of ``p(x)`` (exact when every latent site is
    enumerated), whose log is the negative loss. Sampled sites use ``rsample`` where the
    distribution has it, so reparameterized guides get pathwise gradients; a site without
    it keeps only score-function factors (``log p - log p.detach()``) inside the sum, as
    ``TraceEnum_ELBO``'s sampled enumeration does. Variables outside a plate may not depend
    on variables inside it. Options as :class:`~pyrolite.infer.Trace_ELBO`; particles
    average the estimates of ``log p(x)``.

    A sampled site whose parents are sampled or enumerated gets ``k`` draws for each joint
    value of them: Pyro's ``infer={"expand": True}`` strategy (same draws at the same
    seed). Pyro's ``expand=False`` default instead pairs the draws up ("diagonal", or
    "mixture" with ``tmc=``); those strategies are not implemented here, so such sites
    are drawn as with ``expand=True`` (unbiased too, with more terms).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     z = pyrolite.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    ...     pyrolite.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))
    >>> def guide():
    ...     pass
    >>> loss = TraceTMC_ELBO(max_plate_nesting=0).loss(model, guide)
    >>> exact = -torch.logsumexp(torch.tensor([0.7, 0.3]).log() + dist.Normal(
    ...     torch.tensor([0.0, 2.0]), 1.0).log_prob(torch.tensor(1.5)), 0)
    >>> abs(loss - float(exact)) < 1e-6
    True
    """

    keeps_state = False

    def wrap_enum(self, model: Callable, guide: Callable, sequential: bool = False):
        # Draws of reparameterizable sites go through rsample: the proxy is put on inside
        # enum (which draws with ``fn.sample``) and taken off outside it, so traces hold
        # the distribution itself.
        model, guide = super().wrap_enum(_Pathwise()(model), _Pathwise()(guide), sequential)
        return _Unwrap()(model), _Unwrap()(guide)

    def _pair(self, model, guide, args, kwargs, pending) -> TracePair:
        if pending is not None:
            raise NotImplementedError(
                "TraceTMC_ELBO: the guide has a site marked infer={'enumerate': "
                "'sequential'}; mark it 'parallel' (with 'num_samples' to sample it)."
            )
        # TraceEnum_ELBO puts the particle plate inside enum, so that each particle's
        # sampled sites get their own draws.
        return super()._pair(model, guide, args, kwargs, pending)

    def plan(self, model_trace: Trace, guide_trace: Trace) -> dict:
        if self.strict_enumeration_warning and not _any_parallel(model_trace, guide_trace):
            warnings.warn(
                "TraceTMC_ELBO found no sample sites configured for enumeration. If you want "
                "to enumerate or sample sites, mark them infer={'enumerate': 'parallel'} (with "
                "'num_samples': k to draw k values) or use @config_enumerate. If you do not "
                "want to enumerate, consider using Trace_ELBO instead.",
                stacklevel=2,
            )
        return {}

    def particle(self, plan: dict, model_trace: Trace, guide_trace: Trace):
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        joint = _joint_trace(model_trace, guide_trace)
        layout = plan.get("layout")
        if layout is None or not layout.matches(joint):
            layout = plan["layout"] = enum_layout(joint, None, self.plate_window)
        terms: List[torch.Tensor] = []
        if layout.plan is not None:
            outputs = Contraction(layout.plan)(factor_tensors(layout, joint))
            for value, (view, _, _) in zip(outputs, layout.outputs):
                value = positional(value, view).sum()
                terms.append(value * layout.scale if layout.scale != 1.0 else value)
        for name, _ in layout.model_costs:
            terms.append(joint.nodes[name]["log_prob_sum"])
        estimate = sum_terms(terms)
        if not isinstance(estimate, torch.Tensor):
            estimate = torch.tensor(float(estimate))
        loss = -estimate
        return loss, loss

    def combine(self, results):
        return ELBO.combine(self, results)


class _PathwiseSample:
    """A distribution whose ``sample`` is its ``rsample`` (enum draws with ``sample``)."""

    def __init__(self, base):
        self.base = base

    def sample(self, sample_shape=()):
        return self.base.rsample(torch.Size(sample_shape))

    def expand(self, batch_shape, _instance=None):
        return _PathwiseSample(self.base.expand(batch_shape))

    def __getattr__(self, name):
        return getattr(self.base, name)


class _Pathwise(Messenger):
    def _pyro_sample(self, msg: Message) -> None:
        fn = msg["fn"]
        if (
            msg["value"] is None
            and not msg["done"]
            and msg["infer"].get("num_samples") is not None
            and getattr(fn, "has_rsample", False)
        ):
            msg["fn"] = _PathwiseSample(fn)


class _Unwrap(Messenger):
    def _pyro_sample(self, msg: Message) -> None:
        fn = msg["fn"]
        if isinstance(fn, _PathwiseSample):
            msg["fn"] = fn.base


def _joint_trace(model_trace: Trace, guide_trace: Trace) -> Trace:
    """One trace of factors over which the estimate is a sum-product: a zero factor
    declaring each guide-enumerated variable (so its dim is labelled wherever it appears),
    each guide site's ``-log q`` (minus ``log k`` when drawn ``k`` times), and the model's
    sites, whose own enumerated sites stay variables."""
    joint = Trace()
    owners = {}
    proposals = []
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        infer = site["infer"]
        dim = infer.get("_enumerate_dim")
        if dim is not None:
            if dim in owners:
                raise ValueError(
                    f"TraceTMC_ELBO: the guide's enumerated sites '{owners[dim]}' and '{name}' "
                    f"share dim {dim} (markov recycled it); keep the guide's enumerated "
                    "sites outside markov, or enumerate the chain in the model."
                )
            owners[dim] = name
            size = site["value"].shape[site["value"].dim() - len(site["fn"].event_shape) + dim]
            zeros = site["log_prob"].new_zeros((size,) + (1,) * (-dim - 1))
            joint.add_node(_DECLARE + name, **_factor(site, zeros, {"_enumerate_dim": dim}))
        if infer.get("_enumerate_support"):
            continue  # summed over its support: q plays no part in the estimate
        log_q = site["unscaled_log_prob"]
        _, score, _ = site["score_parts"]
        if not is_identically_zero(score):
            # No pathwise gradient: the draw's 1/q weighs it, and E[1/q ...] does not
            # depend on q, so q's parameters get no gradient from the proposal term.
            log_q = log_q.detach()
        proposal = -log_q
        total = infer.get("_enum_num_samples")
        if total is not None:
            proposal = proposal - math.log(total)
        proposals.append((name + _PROPOSAL, _factor(site, proposal, {})))
    for name, site in proposals:
        joint.add_node(name, **site)
    proposed = {name[: -len(_PROPOSAL)] for name, _ in proposals}
    proposed.update(name[len(_DECLARE) :] for name in joint.nodes)
    for name, site in model_trace.nodes.items():
        if site["type"] != "sample":
            continue
        if name in proposed:
            # The guide's draw, replayed (with the guide's infer): a factor of the guide's
            # variable here, not a variable of the model's own.
            site = dict(site)
            site["infer"] = {k: v for k, v in site["infer"].items() if not k.startswith("_enum")}
        joint.add_node(name, **site)
    return joint


def _factor(site: dict, unscaled: torch.Tensor, infer: dict) -> dict:
    """A pseudo-site of ``unscaled`` log-factor, in the plates of ``site``."""
    log_prob = scale_and_mask(unscaled, site["scale"], site["mask"])
    return {
        "type": "sample",
        "name": site["name"],
        "fn": site["fn"],
        "value": site["value"],
        "is_observed": "_enumerate_dim" not in infer,
        "infer": infer,
        "scale": site["scale"],
        "mask": site["mask"],
        "cond_indep_stack": site["cond_indep_stack"],
        "args": (),
        "kwargs": {},
        "unscaled_log_prob": unscaled,
        "log_prob": log_prob,
        "log_prob_sum": log_prob.sum(),
    }


def _any_parallel(model_trace: Trace, guide_trace: Trace) -> bool:
    return any(
        site["type"] == "sample" and site["infer"].get("_enumerate_dim") is not None
        for trace in (model_trace, guide_trace)
        for site in trace.nodes.values()
    )


__all__ = ["TraceTMC_ELBO"]
