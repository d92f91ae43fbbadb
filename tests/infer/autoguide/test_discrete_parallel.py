"""AutoDiscreteParallel: param names, constraints and inits against Pyro, the guide's
log-density with Pyro's params, enumeration shapes, errors, and the exact posterior of a
two-component model under TraceEnum_ELBO."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
from pyrolite import poutine
from pyrolite.infer import SVI, TraceEnum_ELBO, config_enumerate
from pyrolite.infer.autoguide.discrete import AutoDiscreteParallel
from pyrolite.optim import Adam

Y = torch.tensor([0.0, 1.0])


def _model(lib, d):
    def model(y):
        c = lib.sample("c", d.Categorical(torch.tensor([0.2, 0.3, 0.5])))
        with lib.plate("d", 2):
            z = lib.sample("z", d.Bernoulli(torch.tensor(0.3)))
            lib.sample("w", d.OneHotCategorical(torch.tensor([0.1, 0.9])))
            lib.sample("y", d.Normal(z + c.float(), 1.0), obs=y)

    return model


def _libs():
    pyro = pytest.importorskip("pyro")
    from pyro.infer import config_enumerate as pconfig
    from pyro.infer.autoguide import AutoDiscreteParallel as PGuide

    return [
        (pyrolite, dist, AutoDiscreteParallel, config_enumerate),
        (pyro, pyro.distributions, PGuide, pconfig),
    ]


def test_params_names_constraints_and_inits_equal_pyro():
    got = []
    for lib, d, Guide, config in _libs():
        lib.clear_param_store()
        guide = Guide(config(_model(lib, d)))
        guide(Y)
        store = lib.get_param_store()
        constraint = store.constraint if lib is pyrolite else store._constraints.__getitem__
        got.append({k: (store[k].detach(), type(constraint(k)).__name__) for k in store.keys()})
    mine, ref = got
    assert (
        list(mine)
        == list(ref)
        == [
            "AutoDiscreteParallel.c_probs",
            "AutoDiscreteParallel.z_probs",
            "AutoDiscreteParallel.w_probs",
        ]
    )
    for key in ref:
        assert torch.allclose(mine[key][0], ref[key][0]), key
        assert mine[key][1] == ref[key][1], key


def test_guide_sites_and_log_density_equal_pyro_with_copied_params():
    fixed = {"c": torch.tensor(2), "z": torch.tensor([1.0, 0.0]), "w": torch.eye(2)}
    probs = {
        "AutoDiscreteParallel.c_probs": torch.tensor([0.6, 0.1, 0.3]),
        "AutoDiscreteParallel.z_probs": torch.tensor([0.25, 0.8]),
        "AutoDiscreteParallel.w_probs": torch.tensor([[0.3, 0.7], [0.55, 0.45]]),
    }
    got = []
    for lib, d, Guide, config in _libs():
        lib.clear_param_store()
        guide = Guide(config(_model(lib, d)))
        guide(Y)
        for key, value in probs.items():
            lib.get_param_store()[key] = value
        tr = lib.poutine.trace(lib.poutine.condition(guide, data=fixed)).get_trace(Y)
        got.append(
            {
                n: (
                    type(tr.nodes[n]["fn"]).__name__,
                    tuple(tr.nodes[n]["fn"].batch_shape),
                    tr.nodes[n]["infer"].get("enumerate"),
                    tr.nodes[n]["fn"].log_prob(fixed[n]),
                )
                for n in fixed
            }
        )
    for n in fixed:
        assert got[0][n][:3] == got[1][n][:3], n
        assert torch.allclose(got[0][n][3], got[1][n][3]), n
    # Analytic: log q(c=2) = log 0.3, log q(z) = log [0.25, 0.2].
    assert torch.allclose(got[0]["c"][3], torch.tensor(0.3).log())
    assert torch.allclose(got[0]["z"][3], torch.tensor([0.25, 0.2]).log())


def test_enumerated_shapes_equal_pyro():
    got = []
    for lib, d, Guide, config in _libs():
        lib.clear_param_store()
        guide = Guide(config(_model(lib, d)))
        guide(Y)
        tr = lib.poutine.trace(lib.poutine.enum(guide, first_available_dim=-2)).get_trace(Y)
        # Plate subsample sites aside: pyrolite's guide records one only when the plate
        # subsamples, Pyro always.
        got.append(
            {
                n: tuple(s["value"].shape)
                for n, s in tr.nodes.items()
                if s["type"] == "sample" and n != "d"
            }
        )
    assert got[0] == got[1]
    assert got[0]["c"] == (3, 1) and got[0]["w"] == (2, 1, 1, 1, 2)


def test_errors_match_pyro():
    for lib, d, Guide, config in _libs():

        def continuous(lib=lib, d=d):
            lib.sample("x", d.Normal(0.0, 1.0))

        def binomial(lib=lib, d=d):
            lib.sample("k", d.Binomial(3, torch.tensor(0.4)))

        with pytest.raises(NotImplementedError, match='sample site "x" to be discrete'):
            Guide(config(continuous))()
        with pytest.raises(NotImplementedError, match="Binomial is not supported"):
            Guide(config(binomial))()


def test_traceenum_fit_reaches_exact_posterior():
    """c ~ Cat(1/2, 1/2), y ~ N(2c, 1), y = 2: p(c=1 | y) = 1 / (1 + exp(-2)). With
    enumeration the ELBO gradient is exact, so Adam converges to it (no sampling noise)."""

    @config_enumerate
    def model(y):
        c = pyrolite.sample("c", dist.Categorical(torch.tensor([0.5, 0.5])))
        pyrolite.sample("y", dist.Normal(2.0 * c.float(), 1.0), obs=y)

    guide = AutoDiscreteParallel(model)
    svi = SVI(model, guide, Adam({"lr": 0.1}), TraceEnum_ELBO(max_plate_nesting=0))
    for _ in range(120):
        svi.step(torch.tensor(2.0))
    p1 = 1.0 / (1.0 + torch.tensor(-2.0).exp())
    probs = pyrolite.param("AutoDiscreteParallel.c_probs").detach()
    assert torch.allclose(probs, torch.stack([1 - p1, p1]), atol=2e-3)


def test_plate_subsample_indexes_full_size_probs():
    def model():
        with pyrolite.plate("n", 5, subsample_size=2):
            pyrolite.sample("z", dist.Bernoulli(torch.tensor(0.3)))

    guide = AutoDiscreteParallel(model)
    tr = poutine.trace(guide).get_trace()
    assert tuple(pyrolite.param("AutoDiscreteParallel.z_probs").shape) == (5,)
    assert tuple(tr.nodes["z"]["fn"].batch_shape) == (2,)
