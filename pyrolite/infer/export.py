"""``export_guide``: a trained guide as a standalone TorchScript module drawing posterior samples.

The guide is traced once with ``torch.jit.trace`` while a ``param`` handler answers every
param site from buffers holding the params' current constrained values; the result runs
under ``torch.jit.load`` in a process that has never imported pyrolite.
"""

import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from ..params.param_store import get_param_store
from ..poutine.block_messenger import BlockMessenger
from ..poutine.param_leaves_messenger import ParamLeavesMessenger
from ..poutine.plate_messenger import vectorize
from ..poutine.trace_messenger import TraceMessenger, run_traced
from ..poutine.util import max_plate_nesting_of
from ..process_state import validation_disabled


class _DirichletDraw:
    """Stands in for torch's ``_Dirichlet`` autograd function while a guide is traced.

    Beta and Dirichlet draw through that Python autograd function, which TorchScript cannot
    save; its forward is ``torch._sample_dirichlet``, all a sampler (no gradients) needs.
    """

    apply = staticmethod(torch._sample_dirichlet)


@contextmanager
def _traceable_dirichlet() -> Iterator[None]:
    module = torch.distributions.dirichlet
    saved = module._Dirichlet
    module._Dirichlet = _DirichletDraw
    try:
        yield
    finally:
        module._Dirichlet = saved


class _GuideSampler(torch.nn.Module):
    """``forward(*inputs)``: ``{site name: num_samples draws}`` from ``guide`` with fixed params."""

    def __init__(
        self,
        guide,
        params: Dict[str, torch.Tensor],
        sites: List[Tuple[str, tuple]],
        num_samples: int,
        particle_dim: int,
    ):
        super().__init__()
        self._guide = (guide,)  # a tuple: not registered as a submodule, not traced into state
        self._param_names = list(params)
        for i, value in enumerate(params.values()):
            self.register_buffer(f"param_{i}", value.detach().clone())
        self._sites = sites
        self._num_samples, self._particle_dim = num_samples, particle_dim

    def forward(self, *inputs):
        values = {n: getattr(self, f"param_{i}") for i, n in enumerate(self._param_names)}
        tracer = TraceMessenger()
        guide = vectorize(self._guide[0], "_num_samples", self._num_samples, self._particle_dim)
        with tracer, ParamLeavesMessenger(values):
            guide(*inputs)
        nodes = tracer.trace.nodes
        return {
            name: nodes[name]["value"].reshape(self._num_samples, *shape)
            for name, shape in self._sites
        }


def export_guide(
    guide, *example_args, num_samples: int = 1, path: Optional[str] = None
) -> torch.jit.ScriptModule:
    """Trace ``guide`` with the ParamStore's current values into a TorchScript sampler.

    :param guide: a guide whose sample sites do not depend on the data's values (a
        hand-written guide or an autoguide), already run once so its params exist.
    :param example_args: the guide's tensor arguments (the module takes the same ones;
        their shapes are fixed by the trace).
    :param num_samples: draws per call (vectorized; fixed by the trace, call the module
        again for more).
    :param path: where to ``torch.jit.save`` the module, if given.
    :returns: a ``ScriptModule`` whose ``forward(*inputs)`` returns a dict mapping each
        latent guide site (not observed, not auxiliary), in guide order, to a tensor of shape
        ``(num_samples, *site_shape)``: fresh posterior draws on every call. Params are
        baked in as buffers (their constrained values at export time).

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def guide():
    ...     loc = pyrolite.param("loc", torch.tensor(3.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 0.5))
    >>> guide()
    >>> sampler = export_guide(guide, num_samples=4000)
    >>> z = sampler()["z"]
    >>> z.shape, abs(z.mean().item() - 3.0) < 0.05
    (torch.Size([4000]), True)
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    for i, arg in enumerate(example_args):
        if not isinstance(arg, torch.Tensor):
            raise TypeError(
                f"export_guide: argument {i} is a {type(arg).__name__}; a traced module takes "
                "tensors only (bind other arguments with functools.partial)"
            )
    with torch.no_grad(), validation_disabled(), BlockMessenger():
        trace = run_traced(guide, example_args, {})
    params: Dict[str, torch.Tensor] = {}
    sites: List[Tuple[str, tuple]] = []
    store = get_param_store()
    for name, site in trace.nodes.items():
        if site["type"] == "param":
            params[name] = store[name].detach() if name in store else site["value"]
        elif (
            site["type"] == "sample"
            and not site["is_observed"]
            and not site["infer"].get("is_auxiliary")
        ):
            sites.append((name, tuple(site["value"].shape)))
    if not sites:
        raise ValueError("export_guide: the guide has no latent sample sites to draw")
    particle_dim = -1 - max_plate_nesting_of(trace)
    sampler = _GuideSampler(guide, params, sites, num_samples, particle_dim)
    with torch.no_grad(), validation_disabled(), _traceable_dirichlet(), warnings.catch_warnings():
        # Constants folded into the trace are exactly the point here (baked-in values), and
        # TorchScript is the format asked for even where torch suggests torch.export.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.trace", category=DeprecationWarning)
        module = torch.jit.trace(sampler, tuple(example_args), strict=False, check_trace=False)
        if path is not None:
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.save", category=DeprecationWarning
            )
            torch.jit.save(module, path)
    return module
