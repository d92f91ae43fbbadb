"""Posteriors represented by a collection of weighted execution traces.

``TracePosterior.run`` collects traces; ``marginal(sites)`` and
``EmpiricalMarginal`` turn them into per-site samples and distributions.
"""

from typing import Dict, Iterable, List, Union

import torch

from ..distributions import Empirical
from ..poutine.block_messenger import BlockMessenger
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
                self.log_weights.append(
                    torch.as_tensor(log_weight, dtype=torch.get_default_dtype())
                )
                self.chain_ids.append(0)
        return self

    def marginal(self, sites: Union[str, Iterable[str], None] = None) -> "Marginals":
        """Samples of ``sites`` across the collected traces."""
        return Marginals(self, sites)


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

    def __init__(self, trace_posterior: TracePosterior, sites: Union[str, List[str], None] = None):
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
        super().__init__(samples, log_weights)


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
