"""Helpers on autoguides' models: ``mean_field_entropy``."""

from typing import Callable, Iterable, Optional, Union

import torch

from ...poutine.trace_messenger import TraceMessenger


def mean_field_entropy(
    model: Callable, args: tuple, whitelist: Optional[Iterable[str]] = None
) -> Union[torch.Tensor, float]:
    """The entropy of ``model`` run on ``args`` if all its sample sites were independent:
    the sum of the sites' entropies (broadcast elementwise across batch shapes).

    Every sample site but plate subsamples counts, observed ones too, or only those named
    in ``whitelist``.

    >>> import pyrolite, pyrolite.distributions as dist
    >>> def model():
    ...     pyrolite.sample("x", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("y", dist.Normal(0.0, 2.0))
    >>> round(float(mean_field_entropy(model, ())), 4)  # log(2 pi e) + log 2
    3.531
    """
    tracer = TraceMessenger()
    with tracer:
        model(*args)
    keep = None if whitelist is None else set(whitelist)
    entropy = 0.0
    for name, site in tracer.trace.nodes.items():
        if site["type"] != "sample" or site["infer"].get("_subsample"):
            continue
        if keep is not None and name not in keep:
            continue
        entropy = entropy + site["fn"].entropy()
    return entropy
