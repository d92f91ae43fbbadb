"""The ``Jit*`` estimators, all made by one factory: ``jit_variant(EstimatorClass)``.

The variant compiles the estimator's ``loss_and_surrogate`` (per model/guide pair) with
``pyrolite.ops.jit.trace``, so ``loss``, ``loss_and_grads``, ``differentiable_loss`` and
``SVI`` run the graph, with the very numbers of the eager estimator it comes from.
"""

from typing import Callable, Dict, Tuple

from ..ops.jit import CompiledFunction, trace
from ..process_state import is_validation_enabled
from .elbo import ELBO


class JitMixin:
    """Mixed in before an ELBO class by :func:`jit_variant`: the class, compiled.

    Model and guide need static structure (the same sites and params on every
    call); tensors must come in as arguments, and the other arguments are frozen into
    the graph (a new value compiles a new one). A model that breaks these rules for
    some signature runs eagerly for it, after one ``JitFallbackWarning``.

    State the estimator keeps between steps (``keeps_state``: baselines' running
    averages) enters the graph as inputs and its proposed values leave it as outputs, so
    the graph never bakes in a value and the state is committed in place as in the eager
    estimator. Such an estimator runs eagerly for a model/guide pair until an estimate
    creates no new state (the first step, normally), so its graph sees every input.
    """

    def loss_and_surrogate(self, model, guide, args, kwargs):
        compiled_fns: Dict[Tuple[Callable, Callable], CompiledFunction]
        compiled_fns = self.__dict__.setdefault("_compiled_fns", {})
        pair = (model, guide)
        if self.keeps_state:
            settled = self.__dict__.setdefault("_state_settled", set())
            if pair not in settled:
                known = set(self.state_tensors())
                result = super().loss_and_surrogate(model, guide, args, kwargs)
                if set(self.state_tensors()) == known:
                    settled.add(pair)
                return result
        one_by_one = self.num_particles > 1 and not self.vectorized
        compiled = compiled_fns.get(pair)
        if compiled is None:
            compiled = compiled_fns[pair] = self._compile_pair(model, guide, one_by_one)
        state = (self.state_tensors(),) if self.keeps_state else ()
        self.graph_checks = is_validation_enabled()  # a graph traced now checks observations
        if one_by_one:
            # One graph per particle, called once per particle: a graph of all particles
            # grows with their number, and TorchScript takes minutes over a long one.
            self.set_pending({})
            results = [compiled(*state, *args, **kwargs) for _ in range(self.num_particles)]
            result = self.combine(results)
        elif self.keeps_state:
            loss, surrogate, pending = compiled(*state, *args, **kwargs)
            self.set_pending(pending)
            result = loss, surrogate
        else:
            result = compiled(*args, **kwargs)
        # The traces (and observation checks) of the tracing run are stale after it.
        self.last_traces = None
        if compiled.compile_count:
            self.drop_checks()
        return result

    def _compile_pair(self, model, guide, one_by_one: bool) -> CompiledFunction:
        if one_by_one:
            run = self.one_particle
        else:
            run = super().loss_and_surrogate
        if self.keeps_state:

            def estimate(state, *args, **kwargs):
                with self.state_inputs(state):
                    result = run(model, guide, args, kwargs)
                return result if one_by_one else (*result, self.take_pending())

        else:

            def estimate(*args, **kwargs):
                return run(model, guide, args, kwargs)

        estimate.__qualname__ = (
            f"{type(self).__name__}(model={getattr(model, '__name__', model)!s}, "
            f"guide={getattr(guide, '__name__', guide)!s})"
        )
        return trace(
            estimate, ignore_warnings=self.ignore_jit_warnings, jit_options=self.jit_options
        )

    @property
    def compile_count(self) -> int:
        """How many graphs this estimator traced (over all model/guide pairs)."""
        return sum(f.compile_count for f in self.__dict__.get("_compiled_fns", {}).values())


def jit_variant(elbo_class: type) -> type:
    """``Jit<Name>``: ``elbo_class`` with its loss computation compiled by ``torch.jit.trace``.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> from pyrolite.infer import Trace_ELBO
    >>> pyrolite.clear_param_store()
    >>> def model(x):
    ...     z = pyrolite.sample("z", dist.Normal(0.0, 1.0))
    ...     with pyrolite.plate("data", len(x)):
    ...         pyrolite.sample("x", dist.Normal(z, 1.0), obs=x)
    >>> def guide(x):
    ...     loc = pyrolite.param("loc", torch.tensor(0.0))
    ...     pyrolite.sample("z", dist.Normal(loc, 1.0))
    >>> JitTrace_ELBO = jit_variant(Trace_ELBO)
    >>> elbo, x = JitTrace_ELBO(), torch.zeros(4)
    >>> pyrolite.set_rng_seed(0); compiled = [elbo.loss(model, guide, x) for _ in range(2)]
    >>> pyrolite.set_rng_seed(0); eager = [Trace_ELBO().loss(model, guide, x) for _ in range(2)]
    >>> torch.allclose(torch.tensor(compiled), torch.tensor(eager)), elbo.compile_count
    (True, 1)
    """
    if not (isinstance(elbo_class, type) and issubclass(elbo_class, ELBO)):
        raise TypeError(f"jit_variant needs an ELBO subclass, got {elbo_class!r}")
    name = f"Jit{elbo_class.__name__}"
    doc = (
        f"``{elbo_class.__name__}`` with its loss computation compiled by "
        "``torch.jit.trace`` (see :class:`JitMixin` for what the model and guide need)."
    )
    return type(name, (JitMixin, elbo_class), {"__doc__": doc, "__module__": __name__})


# Every Jit* estimator is made here, by the factory, from its eager class.
from .renyi_elbo import RenyiELBO  # noqa: E402
from .trace_elbo import Trace_ELBO  # noqa: E402
from .trace_mean_field_elbo import TraceMeanField_ELBO  # noqa: E402
from .traceenum_elbo import TraceEnum_ELBO  # noqa: E402
from .tracegraph_elbo import TraceGraph_ELBO  # noqa: E402

JitTrace_ELBO = jit_variant(Trace_ELBO)
JitTraceMeanField_ELBO = jit_variant(TraceMeanField_ELBO)
JitRenyiELBO = jit_variant(RenyiELBO)
JitTraceGraph_ELBO = jit_variant(TraceGraph_ELBO)
JitTraceEnum_ELBO = jit_variant(TraceEnum_ELBO)
