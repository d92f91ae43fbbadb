"""Messenger base class: context manager, decorator, stack discipline, error messages."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.poutine.runtime import _STACK, am_i_wrapped, apply_stack, effectful, new_message


class _Recorder(poutine.Messenger):
    """Appends (tag, phase, site name) to a shared log."""

    def __init__(self, tag, log):
        self.tag, self.log = tag, log

    def _pyro_sample(self, msg):
        self.log.append((self.tag, "process", msg["name"]))

    def _pyro_post_sample(self, msg):
        self.log.append((self.tag, "post", msg["name"]))


def _normal_model():
    return pyrolite.sample("x", dist.Normal(0.0, 1.0))


def test_messenger_as_context_manager_pushes_and_pops():
    assert _STACK == []
    assert not am_i_wrapped()
    with poutine.trace() as tracer:
        assert _STACK == [tracer]
        assert am_i_wrapped()
        _normal_model()
    assert _STACK == []
    assert list(tracer.trace.nodes) == ["x"]


def test_messenger_as_decorator_wraps_and_records_msngr():
    log = []
    msngr = _Recorder("r", log)
    wrapped = msngr(_normal_model)
    assert wrapped.msngr is msngr
    assert wrapped.__name__ == "_normal_model"
    wrapped()
    assert log == [("r", "process", "x"), ("r", "post", "x")]
    assert _STACK == []


def test_process_innermost_first_and_postprocess_outer_first():
    log = []
    with _Recorder("outer", log), _Recorder("inner", log):
        _normal_model()
    # As in Pyro: process from the innermost handler out, postprocess in stack order.
    assert log == [
        ("inner", "process", "x"),
        ("outer", "process", "x"),
        ("outer", "post", "x"),
        ("inner", "post", "x"),
    ]


def test_stop_hides_message_from_outer_handlers_and_their_postprocess():
    log = []
    with _Recorder("outer", log), poutine.block(), _Recorder("inner", log):
        _normal_model()
    assert log == [("inner", "process", "x"), ("inner", "post", "x")]


def test_stack_restored_when_model_raises_inside_nested_handlers():
    def bad_model():
        pyrolite.sample("x", dist.Normal(0.0, 1.0))
        with poutine.scale(scale=2.0), poutine.block(hide=["y"]):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        poutine.trace(poutine.seed(poutine.condition(bad_model, data={}), rng_seed=1)).get_trace()
    assert _STACK == []


def test_stack_restored_when_context_manager_body_raises():
    with pytest.raises(ValueError, match="inside"):
        with poutine.trace(), pyrolite.plate("p", 3), poutine.mask(mask=True):
            assert len(_STACK) == 3
            raise ValueError("inside")
    assert _STACK == []
    # The plate's dim was released, so a new plate can take dim -1 again.
    with pyrolite.plate("q", 2, dim=-1):
        pass


def test_out_of_order_exit_raises():
    a, b = poutine.trace(), poutine.trace()
    a.__enter__()
    b.__enter__()
    with pytest.raises(RuntimeError, match="exited out of order"):
        a.__exit__(None, None, None)
    _STACK.clear()


@pytest.mark.parametrize(
    "make_handler, handler_name",
    [
        (lambda fn: poutine.trace(fn), "poutine.trace"),
        (lambda fn: poutine.replay(fn, trace=poutine.Trace()), "poutine.replay"),
        (lambda fn: poutine.block(fn), "poutine.block"),
        (lambda fn: poutine.condition(fn, data={}), "poutine.condition"),
        (lambda fn: poutine.scale(fn, scale=2.0), "poutine.scale"),
        (lambda fn: poutine.seed(fn, rng_seed=0), "poutine.seed"),
        (lambda fn: poutine.queue(fn, queue=[poutine.Trace()]), "poutine.queue"),
    ],
)
def test_non_callable_model_is_a_type_error_naming_handler_and_fix(make_handler, handler_name):
    with pytest.raises(TypeError) as info:
        make_handler(torch.tensor(1.0))
    message = str(info.value)
    assert handler_name in message
    assert "callable" in message
    assert f"{handler_name}(model), not {handler_name}(model())" in message


def test_messenger_call_on_non_callable_names_class():
    with pytest.raises(TypeError, match="TraceMessenger expected a callable"):
        poutine.TraceMessenger()(3)


def test_apply_stack_without_handlers_runs_default_effect():
    msg = new_message("sample", "x", lambda: torch.tensor(4.0))
    apply_stack(msg)
    assert msg["done"] and msg["value"].item() == 4.0


def test_effectful_is_identity_outside_handlers_and_a_message_inside():
    @effectful(type="my_effect")
    def double(x):
        return 2 * x

    class Halver(poutine.Messenger):
        def _pyro_my_effect(self, msg):
            msg["value"] = msg["args"][0] / 2
            msg["done"] = True

    assert double(3.0) == 6.0
    with Halver():
        assert double(3.0) == 1.5


def test_continuation_runs_after_postprocess():
    seen = []
    msg = new_message("sample", "x", lambda: torch.tensor(1.0))
    msg["continuation"] = lambda m: seen.append(m["value"].item())
    with poutine.trace():
        apply_stack(msg)
    assert seen == [1.0]
