import math

import pytest
import torch

import pyrolite.optim as optim
from pyrolite.optim.clipped_adam import ClippedAdam as TorchClippedAdam
from pyrolite.optim.pytorch_optimizers import OPTIMIZER_NAMES


def target_of(p):
    return torch.linspace(1.0, -2.0, p.numel()).reshape(p.shape)


def scale_of(p):
    return torch.arange(1.0, p.numel() + 1.0).reshape(p.shape)


def quadratic_loss(p):
    return float(((p.detach() - target_of(p)) ** 2 * scale_of(p)).sum())


def quadratic_grad(p):
    """Gradient of ``quadratic_loss``."""
    return 2 * (p.detach() - target_of(p)) * scale_of(p)


def run_pyrolite(optimizer, params, steps):
    for _ in range(steps):
        for p in params:
            p.grad = quadratic_grad(p)
        optimizer(params)
        for p in params:
            p.grad = None


def test_adam_matches_hand_written_torch_adam_for_50_steps(names):
    a = names.param("a", torch.zeros(3))
    b = names.param("b", torch.ones(3))
    ref = [a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()]
    # pyrolite uses torch's fused kernel by default; the same kernel gives the same bits.
    torch_adam = torch.optim.Adam(ref, lr=0.05, betas=(0.9, 0.99), fused=True)
    pyro_adam = optim.Adam({"lr": 0.05, "betas": (0.9, 0.99)})
    for _ in range(50):
        for p in ref:
            p.grad = quadratic_grad(p)
        torch_adam.step()
        run_pyrolite(pyro_adam, [a, b], 1)
        assert torch.equal(a, ref[0]) and torch.equal(b, ref[1])
    assert not torch.equal(a, torch.zeros(3))


def test_explicit_foreach_false_matches_the_for_loop_adam_bitwise(names):
    a = names.param("a", torch.zeros(3))
    ref = a.detach().clone().requires_grad_()
    torch_adam = torch.optim.Adam([ref], lr=0.05, foreach=False)
    pyro_adam = optim.Adam({"lr": 0.05, "foreach": False})
    for _ in range(20):
        ref.grad = quadratic_grad(ref)
        torch_adam.step()
        run_pyrolite(pyro_adam, [a], 1)
    assert torch.equal(a, ref)


def test_dict_args_share_one_torch_optimizer_and_group(names):
    params = [names.param(f"p{i}", torch.zeros(2)) for i in range(4)]
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, params[:2], 1)
    run_pyrolite(adam, params, 1)
    optimizers = {id(adam.torch_optimizer(p)) for p in params}
    assert len(optimizers) == 1
    (torch_optimizer,) = {adam.torch_optimizer(p) for p in params}
    assert len(torch_optimizer.param_groups) == 1
    assert len(torch_optimizer.param_groups[0]["params"]) == 4


@pytest.mark.parametrize("two_arg", [True, False])
def test_per_param_callable_lr_gives_each_param_its_own_sgd_step(names, two_arg):
    w = names.param("baseline$$$w", torch.zeros(3))
    v = names.param("loc", torch.zeros(3))
    u = names.param("scale", torch.zeros(3))
    if two_arg:  # seed 004 style

        def per_param_args(module_name, param_name):
            if "baseline" in param_name or "baseline" in module_name:
                return {"lr": 0.010}
            return {"lr": 0.001}
    else:

        def per_param_args(param_name):
            return {"lr": 0.010} if param_name.startswith("baseline.") else {"lr": 0.001}

    sgd = optim.SGD(per_param_args)
    grads = {w: quadratic_grad(w), v: quadratic_grad(v), u: quadratic_grad(u)}
    run_pyrolite(sgd, [w, v, u], 1)
    torch.testing.assert_close(w.detach(), -0.010 * grads[w], rtol=0, atol=1e-7)
    torch.testing.assert_close(v.detach(), -0.001 * grads[v], rtol=0, atol=1e-7)
    torch.testing.assert_close(u.detach(), -0.001 * grads[u], rtol=0, atol=1e-7)
    # the two params with equal args share one torch optimizer
    assert sgd.torch_optimizer(v) is sgd.torch_optimizer(u)
    assert sgd.torch_optimizer(v) is not sgd.torch_optimizer(w)


def test_param_first_seen_at_step_10_gets_fresh_adam_state(names):
    a = names.param("a", torch.zeros(3))
    b = names.param("b", torch.full((3,), 5.0))
    lr = 0.1
    adam = optim.Adam({"lr": lr})
    run_pyrolite(adam, [a], 10)
    b_before = b.detach().clone()
    grad_b = quadratic_grad(b)
    run_pyrolite(adam, [a, b], 1)
    # Adam's first step is lr * sign(grad) up to eps
    torch.testing.assert_close(b.detach(), b_before - lr * grad_b.sign(), rtol=0, atol=1e-6)
    assert int(adam.torch_optimizer(b).state[b]["step"]) == 1
    assert int(adam.torch_optimizer(a).state[a]["step"]) == 11


def test_params_not_passed_are_untouched(names):
    a = names.param("a", torch.zeros(3))
    b = names.param("b", torch.zeros(3))
    adam = optim.Adam({"lr": 0.1})
    run_pyrolite(adam, [a, b], 3)
    b_before = b.detach().clone()
    state_before = adam.get_state()["b"]
    run_pyrolite(adam, [a], 2)
    assert torch.equal(b, b_before)
    after = adam.get_state()["b"]["state"][0]
    for key, value in state_before["state"][0].items():
        assert torch.equal(after[key], value)


def test_clip_norm_scales_each_param_gradient_to_the_norm(names):
    a = names.param("a", torch.zeros(2))
    b = names.param("b", torch.zeros(2))
    sgd = optim.SGD({"lr": 1.0}, {"clip_norm": 1.0})
    a.grad = torch.tensor([3.0, 4.0])  # norm 5: clipped to norm 1
    b.grad = torch.tensor([0.3, 0.4])  # norm 0.5: left alone
    sgd([a, b])
    torch.testing.assert_close(a.detach(), -torch.tensor([0.6, 0.8]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.detach(), -torch.tensor([0.3, 0.4]), rtol=1e-5, atol=1e-6)


def test_clip_value_clamps_elementwise_and_callable_clip_args_apply_per_param(names):
    a = names.param("a", torch.zeros(3))
    b = names.param("b", torch.zeros(3))
    sgd = optim.SGD({"lr": 1.0}, lambda name: {"clip_value": 0.5} if name == "a" else {})
    a.grad = torch.tensor([2.0, -0.25, -7.0])
    b.grad = torch.tensor([2.0, -0.25, -7.0])
    sgd([a, b])
    assert torch.equal(a.detach(), torch.tensor([-0.5, 0.25, 0.5]))
    assert torch.equal(b.detach(), torch.tensor([-2.0, 0.25, 7.0]))


def test_unknown_clip_key_is_rejected():
    with pytest.raises(ValueError, match="clip_norm"):
        optim.Adam({"lr": 0.1}, {"clip": 1.0})


def test_clipped_adam_first_step_and_lr_decay(names):
    lr, lrd = 0.1, 0.9
    w = names.param("w", torch.zeros(3))
    clipped = optim.ClippedAdam({"lr": lr, "betas": (0.9, 0.999), "clip_norm": 10.0, "lrd": lrd})
    w.grad = torch.tensor([100.0, -1.0, 0.5])
    clipped([w])
    # first step: lr decays once, then moves by lr * lrd against the sign of the grad
    expected = -lr * lrd * torch.tensor([1.0, -1.0, 1.0])
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-6)
    for _ in range(4):
        w.grad = torch.ones(3)
        clipped([w])
    group_lr = clipped.get_state()["w"]["param_groups"][0]["lr"]
    assert group_lr == pytest.approx(lr * lrd**5, rel=1e-12)


def test_clipped_adam_clamps_gradients_elementwise():
    x = torch.zeros(2, requires_grad=True)
    y = torch.zeros(2, requires_grad=True)
    ox, oy = (
        TorchClippedAdam([x], lr=0.1, clip_norm=2.0),
        TorchClippedAdam([y], lr=0.1, clip_norm=2.0),
    )
    for step in range(5):
        x.grad = torch.tensor([50.0, -1.0]) * (step + 1)
        y.grad = torch.tensor([2.0, -min(step + 1.0, 2.0)])
        ox.step()
        oy.step()
    assert torch.equal(x, y)
    assert torch.equal(x.grad, torch.tensor([250.0, -5.0]))  # p.grad itself is not modified


def test_clipped_adam_centered_variance_and_weight_decay_first_step():
    w = torch.tensor([1.0, -1.0], requires_grad=True)
    opt = TorchClippedAdam([w], lr=0.1, weight_decay=0.5, centered_variance=True)
    w.grad = torch.tensor([1.0, 1.0])
    opt.step()
    # grad + wd * w = [1.5, 0.5]; m = 0.1 g; centered v = 0.001 * (0.9 g)^2
    g = torch.tensor([1.5, 0.5])
    m_hat = g  # (0.1 g) / (1 - 0.9)
    v_hat = (0.9 * g) ** 2  # 0.001 (0.9 g)^2 / (1 - 0.999)
    expected = torch.tensor([1.0, -1.0]) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in OPTIMIZER_NAMES if n not in ("LBFGS", "SparseAdam")])
def test_every_wrapper_matches_its_torch_optimizer(names, name):
    torch_class = getattr(torch.optim, name)
    w = names.param("w", torch.tensor([0.5, -1.5, 2.0]))
    ref = w.detach().clone().requires_grad_()
    args = {"lr": 0.05}
    ref_opt = torch_class([ref], **args)
    wrapped = getattr(optim, name)(args)
    for _ in range(5):
        ref.grad = quadratic_grad(ref)
        ref_opt.step()
        run_pyrolite(wrapped, [w], 1)
    assert torch.equal(w, ref)
    assert not torch.equal(w.detach(), torch.tensor([0.5, -1.5, 2.0]))


@pytest.mark.skipif(not hasattr(torch.optim, "Adafactor"), reason="torch has no Adafactor")
def test_adafactor_wrapper_matches_torch(names):
    w = names.param("w", torch.arange(6.0).reshape(2, 3))
    ref = w.detach().clone().requires_grad_()
    ref_opt = torch.optim.Adafactor([ref], lr=0.05)
    wrapped = optim.Adafactor({"lr": 0.05})
    for _ in range(3):
        ref.grad = ref.detach() * 2
        ref_opt.step()
        w.grad = w.detach() * 2
        wrapped([w])
    assert torch.equal(w, ref)


def test_sparse_adam_wrapper_steps_rows_with_sparse_grads(names):
    w = names.param("w", torch.zeros(4, 2))
    sparse = optim.SparseAdam({"lr": 0.1})
    w.grad = torch.sparse_coo_tensor(
        [[1, 3]], torch.tensor([[1.0, -1.0], [2.0, 2.0]]), (4, 2), check_invariants=True
    )
    sparse([w])
    expected = torch.tensor([[0.0, 0.0], [-0.1, 0.1], [0.0, 0.0], [-0.1, -0.1]])
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-6)


def test_lbfgs_wrapper_minimizes_a_quadratic_with_a_closure(names):
    w = names.param("w", torch.zeros(3))
    lbfgs = optim.LBFGS({"lr": 1.0, "max_iter": 50, "line_search_fn": "strong_wolfe"})

    def closure():
        w.grad = quadratic_grad(w)
        return quadratic_loss(w)

    w.grad = quadratic_grad(w)
    lbfgs([w], closure)
    torch.testing.assert_close(w.detach(), target_of(w), rtol=0, atol=1e-5)


def test_per_param_callable_needs_the_param_store_name(names):
    stranger = torch.zeros(2, requires_grad=True)
    stranger.grad = torch.ones(2)
    with pytest.raises(ValueError, match="not in the ParamStore"):
        optim.Adam(lambda name: {"lr": 0.1})([stranger])


def test_non_dict_optim_args_are_rejected():
    with pytest.raises(TypeError, match="optim_args"):
        optim.Adam(0.1)


def test_adam_update_size_sanity():
    # guard for the docstring claim: Adam's first step equals lr for any nonzero gradient
    w = torch.zeros(1, requires_grad=True)
    w.grad = torch.tensor([-1e-3])
    optim.Adam({"lr": 0.25})([w])
    assert math.isclose(float(w.detach()), 0.25, rel_tol=1e-4)


def test_per_param_args_use_the_real_param_store_names():
    param_store = pytest.importorskip("pyrolite.params.param_store")
    store = param_store._PARAM_STORE
    store.clear()
    try:
        store.setdefault("baseline$$$fc.weight", torch.zeros(2))
        store.setdefault("loc", torch.zeros(2))
        w, loc = store.unconstrained("baseline$$$fc.weight"), store.unconstrained("loc")
        seen = []

        def per_param_args(module_name, param_name):
            seen.append((module_name, param_name))
            return {"lr": 0.5 if module_name == "baseline" else 0.1}

        sgd = optim.SGD(per_param_args)
        w.grad, loc.grad = torch.ones(2), torch.ones(2)
        sgd([w, loc])
        assert seen == [("baseline", "fc.weight"), ("loc", "loc")]
        assert torch.equal(w.detach(), torch.full((2,), -0.5))
        assert torch.equal(loc.detach(), torch.full((2,), -0.1))
        assert sorted(sgd.get_state()) == ["baseline$$$fc.weight", "loc"]
    finally:
        store.clear()
