"""Posteriors represented by a collection of weighted execution traces.

``TracePosterior.run`` collects traces; ``marginal(sites)`` and
``EmpiricalMarginal`` turn them into per-site samples and distributions.
"""

from typing import Callable, Dict, Iterable, List, Optional, Union

import torch

from ..distributions import Empirical
from ..poutine.block_messenger import BlockMessenger
from ..poutine.trace_messenger import run_traced
from ..poutine.trace_struct import Trace


class TracePosterior:
    """Base class: subclasses implement ``_traces(*args)`` yielding ``(trace, log_weight)``."""

    def __init__(self, num_chains: int = 1):
        self.num_chains = num_chains
        self._reset()

    def _reset(self) -> None:
        self.exec_traces: List[Trace] = []
        self.log_weights: List[torch.Tensor] = []
        self.chain_ids: List[int] = []

    def _traces(self, *args, **kwargs):
        raise NotImplementedError

    def run(self, *args, **kwargs) -> "TracePosterior":
        """Collect the traces (hidden from any outer handler)."""
        self._reset()
        with torch.no_grad(), BlockMessenger():
            for trace, log_weight in self._traces(*args, **kwargs):
                self.exec_traces.append(trace)
                # A tensor keeps its dtype (a float64 model's weights stay float64).
                self.log_weights.append(
                    log_weight.detach()
                    if isinstance(log_weight, torch.Tensor)
                    else torch.as_tensor(log_weight, dtype=torch.get_default_dtype())
                )
                self.chain_ids.append(0)
        return self

    def marginal(self, sites: Union[str, Iterable[str], None] = None) -> "Marginals":
        """Samples of ``sites`` across the collected traces."""
        return Marginals(self, sites)

    def __call__(self, *args, **kwargs) -> Trace:
        """One of the collected traces, drawn with probability proportional to its weight."""
        if not self.exec_traces:
            raise ValueError("The posterior has no traces: call .run(*args) first")
        log_weights = torch.stack(self.log_weights)
        index = torch.distributions.Categorical(logits=log_weights).sample().item()
        return self.exec_traces[index]


class EmpiricalMarginal(Empirical):
    """The empirical distribution of one site (or several, stacked) over a posterior's traces.

    >>> import torch
    >>> from pyrolite.poutine import Trace
    >>> post = TracePosterior()
    >>> for v in (1.0, 3.0):
    ...     tr = Trace(); tr.add_node("z", type="sample", value=torch.tensor(v))
    ...     post.exec_traces.append(tr); post.log_weights.append(torch.tensor(0.0))
    >>> EmpiricalMarginal(post, "z").mean
    tensor(2.)
    """

    def __init__(
        self,
        trace_posterior: TracePosterior,
        sites: Union[str, List[str], None] = None,
        validate_args: Optional[bool] = None,
    ):
        if sites is None:
            sites = "_RETURN"
        if not trace_posterior.exec_traces:
            raise ValueError("The posterior has no traces: call .run(*args) first")
        names = [sites] if isinstance(sites, str) else list(sites)
        values = []
        for trace in trace_posterior.exec_traces:
            missing = [n for n in names if n not in trace.nodes]
            if missing:
                raise KeyError(f"Sites {missing} are not in the posterior's traces")
            parts = [torch.as_tensor(trace.nodes[n]["value"]) for n in names]
            values.append(parts[0] if len(parts) == 1 else torch.stack(parts))
        samples = torch.stack(values)
        log_weights = torch.stack(trace_posterior.log_weights).to(samples.device)
        super().__init__(samples, log_weights, validate_args=validate_args)


class Marginals:
    """Per-site marginals of a ``TracePosterior``: ``support()`` and ``empirical``."""

    def __init__(self, trace_posterior: TracePosterior, sites: Union[str, Iterable[str], None]):
        if sites is None:
            sites = ["_RETURN"]
        elif isinstance(sites, str):
            sites = [sites]
        self.sites = list(sites)
        self._trace_posterior = trace_posterior
        self._marginals: Dict[str, EmpiricalMarginal] = {
            site: EmpiricalMarginal(trace_posterior, site) for site in self.sites
        }

    def support(self, flatten: bool = False) -> Dict[str, torch.Tensor]:
        """{site: tensor of samples, stacked along dim 0}; ``flatten`` reshapes to 2-D."""
        out = {}
        for site, marginal in self._marginals.items():
            samples = marginal.enumerate_support()
            if flatten:
                samples = samples.reshape(samples.shape[0], -1)
            out[site] = samples
        return out

    @property
    def empirical(self) -> Dict[str, EmpiricalMarginal]:
        return self._marginals


class TracePredictive(TracePosterior):
    """Posterior predictive traces: the model replayed at latent values of posterior traces.

    Each of ``num_samples`` runs picks a trace of ``posterior`` (by weight), fixes the
    model's latent sites to its values and samples the rest afresh; observed sites keep
    the data passed to ``run``. ``keep_sites`` limits the fixed sites to those named.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.infer import Importance
    >>> def model(x=None):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     return pyrolite.sample("x", dist.Normal(z, 0.1), obs=x)
    >>> posterior = Importance(model, num_samples=100).run(torch.tensor(1.0))
    >>> predictive = TracePredictive(model, posterior, num_samples=20).run()
    >>> EmpiricalMarginal(predictive, "x").sample_size
    20
    """

    def __init__(
        self,
        model: Callable,
        posterior: TracePosterior,
        num_samples: int,
        keep_sites: Optional[Iterable[str]] = None,
    ):
        super().__init__()
        self.model = model
        self.posterior = posterior
        self.num_samples = num_samples
        self.keep_sites = None if keep_sites is None else set(keep_sites)

    def _traces(self, *args, **kwargs):
        if not self.posterior.exec_traces:
            self.posterior.run(*args, **kwargs)
        for _ in range(self.num_samples):
            posterior_trace = self.posterior()
            fixed = Trace()
            for name, site in posterior_trace.nodes.items():
                if site["type"] != "sample" or site["is_observed"]:
                    continue
                if self.keep_sites is not None and name not in self.keep_sites:
                    continue
                fixed.add_node(name, **site)
            yield run_traced(self.model, args, kwargs, replay_trace=fixed, with_return=True), 0.0
