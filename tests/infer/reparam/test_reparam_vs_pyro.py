"""pyrolite's reparameterizers against Pyro 1.9's: trace structure and log-density."""

import pytest
import torch

import pyrolite
import pyrolite.distributions as pdist
from pyrolite import poutine as ppoutine
from pyrolite.distributions.gaussian_hmm import LinearHMM
from pyrolite.distributions.projected_normal import ProjectedNormal as PProjectedNormal
from pyrolite.distributions.stable import Stable as PStable
from pyrolite.infer import reparam as preparam
from pyrolite.poutine.reparam_messenger import ReparamMessenger

pyro = pytest.importorskip("pyro")
pyro_dist = pytest.importorskip("pyro.distributions")
from pyro import poutine as qpoutine  # noqa: E402
from pyro.infer import reparam as qreparam  # noqa: E402


def reparam(fn, config):
    return ReparamMessenger(config)(fn)


def _models(lib_dist, stable, projected_normal):
    d = lib_dist
    return {
        "normal_plate": lambda s: _plate(s, lambda: d.Normal(torch.tensor(1.0), 2.0)),
        "normal_event": lambda s: s("x", d.Normal(torch.tensor([0.5, 1.0]), 3.0).to_event(1)),
        "studentt": lambda s: _plate(s, lambda: d.StudentT(3.0, 1.0, 2.0)),
        "stable": lambda s: _plate(s, lambda: stable(1.5, 0.3, 2.0, 1.0)),
        "stable_neg": lambda s: _plate(s, lambda: stable(1.7, -0.6, 0.5, -1.0)),
        "stable_sym": lambda s: _plate(s, lambda: stable(1.2, 0.0, 2.0, 1.0)),
        "stable_obs": lambda s: _plate(
            s, lambda: stable(1.5, 0.3, 2.0, 1.0), obs=torch.tensor([0.1, -2.0, 3.0])
        ),
        "stable_sym_obs": lambda s: _plate(
            s, lambda: stable(1.5, 0.0, 2.0, 1.0), obs=torch.tensor([0.1, -2.0, 3.0])
        ),
        "projected_normal": lambda s: s("x", projected_normal(torch.tensor([1.0, 2.0, 0.5]))),
        "relaxed": lambda s: s(
            "x", d.RelaxedOneHotCategorical(torch.tensor(0.5), probs=torch.tensor([0.2, 0.3, 0.5]))
        ),
        "lognormal": lambda s: s("x", d.LogNormal(torch.zeros(2), 1.0).to_event(1)),
        "lognormal_obs": lambda s: s("x", d.LogNormal(1.0, 2.0), obs=torch.tensor(1.5)),
        "vector": lambda s: s("x", d.Normal(torch.arange(6.0), 1.0).to_event(1)),
        "vector_plate": lambda s: _plate(s, lambda: d.Normal(torch.arange(4.0), 1.0).to_event(1)),
        "vector_obs": lambda s: s(
            "x", d.Normal(torch.zeros(4), 1.0).to_event(1), obs=torch.tensor([1.0, 2, 0, 1])
        ),
        "normal_obs": lambda s: s("x", d.Normal(1.0, 2.0), obs=torch.tensor(0.3)),
        "hmm": lambda s: _plate(
            s, lambda: _hmm(d, stable), obs=torch.linspace(0.5, 1.5, 36).reshape(3, 4, 3)
        ),
        "hmm_gaussian": lambda s: s("x", _hmm_gaussian(d)),
        "hmm_mvn": lambda s: s("x", _hmm_gaussian(d, mvn=True), obs=torch.zeros(4, 3)),
    }


def _hmm(d, stable):
    hmm_cls = d.LinearHMM if d is pyro_dist else LinearHMM
    return hmm_cls(
        d.StudentT(3.0, torch.zeros(2), 1.0).to_event(1),
        torch.tensor([[0.9, 0.1], [0.0, 0.8]]),
        stable(1.5, 0.0, torch.ones(2)).to_event(1),
        torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]]),
        d.TransformedDistribution(
            stable(1.5, -0.5, torch.ones(3)).to_event(1), [d.transforms.ExpTransform()]
        ),
        duration=4,
    )


def _hmm_gaussian(d, mvn=False):
    hmm_cls = d.LinearHMM if d is pyro_dist else LinearHMM
    init = d.Normal(torch.zeros(2), 1.0).to_event(1)
    if mvn:
        init = d.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.3], [0.3, 2.0]]))
    return hmm_cls(
        init,
        0.9 * torch.eye(2),
        d.StudentT(4.0, torch.zeros(2), 0.5).to_event(1),
        torch.ones(2, 3),
        d.Normal(torch.zeros(3), 0.3).to_event(1),
        duration=4,
    )


def _plate(sample, make, obs=None):
    plate = pyrolite.plate if sample is pyrolite.sample else pyro.plate
    with plate("p", 3):
        return sample("x", make(), obs=obs)


CASES = [
    ("normal_plate", "LocScaleReparam", (), {}),
    ("normal_plate", "LocScaleReparam", (0.0,), {}),
    ("normal_plate", "LocScaleReparam", (0.3,), {}),
    ("normal_plate", "LocScaleReparam", (1.0,), {}),
    ("normal_event", "LocScaleReparam", (), {}),
    ("normal_obs", "LocScaleReparam", (0.0,), {}),
    ("studentt", "LocScaleReparam", (0.2,), {"shape_params": ["df"]}),
    ("studentt", "StudentTReparam", (), {}),
    ("stable", "LatentStableReparam", (), {}),
    ("stable_neg", "LatentStableReparam", (), {}),
    ("stable", "StableReparam", (), {}),
    ("stable_neg", "StableReparam", (), {}),
    ("stable_obs", "StableReparam", (), {}),
    ("stable_sym", "SymmetricStableReparam", (), {}),
    ("stable_sym_obs", "SymmetricStableReparam", (), {}),
    ("projected_normal", "ProjectedNormalReparam", (), {}),
    ("relaxed", "GumbelSoftmaxReparam", (), {}),
    ("lognormal", "TransformReparam", (), {}),
    ("lognormal_obs", "TransformReparam", (), {}),
    ("vector", "DiscreteCosineReparam", (), {}),
    ("vector", "DiscreteCosineReparam", (), {"smooth": 1.0}),
    ("vector_plate", "DiscreteCosineReparam", (), {}),
    ("vector_obs", "DiscreteCosineReparam", (), {}),
    ("normal_plate", "DiscreteCosineReparam", (), {"experimental_allow_batch": True}),
    ("vector", "HaarReparam", (), {}),
    ("vector", "HaarReparam", (), {"flip": True}),
    ("vector_plate", "HaarReparam", (), {}),
    ("vector_obs", "SplitReparam", ([1, 3], -1), {}),
    (
        "hmm",
        "LinearHMMReparam",
        (),
        {"init": "StudentTReparam", "trans": "SymmetricStableReparam", "obs": "StableReparam"},
    ),
    ("hmm_gaussian", "LinearHMMReparam", (), {"trans": "StudentTReparam"}),
    ("hmm_mvn", "LinearHMMReparam", (), {"trans": "StudentTReparam"}),
]


def _make(module, cls, args, kwargs):
    kwargs = {k: getattr(module, v)() if isinstance(v, str) else v for k, v in kwargs.items()}
    return getattr(module, cls)(*args, **kwargs)


def _sites(tr):
    return [
        (name, tuple(site["value"].shape), site["is_observed"])
        for name, site in tr.nodes.items()
        if site["type"] == "sample"
        and not site["infer"].get("_subsample")
        and type(site["fn"]).__name__ != "_Subsample"
    ]


@pytest.mark.parametrize("model_name,cls,args,kwargs", CASES)
def test_trace_and_log_density_match_pyro(model_name, cls, args, kwargs):
    qmodel = _models(pyro_dist, pyro_dist.Stable, pyro_dist.ProjectedNormal)[model_name]
    pmodel = _models(pdist, PStable, PProjectedNormal)[model_name]
    pyro.clear_param_store()
    pyrolite.clear_param_store()
    pyro.set_rng_seed(1)
    qtr = qpoutine.trace(
        qpoutine.reparam(lambda: qmodel(pyro.sample), {"x": _make(qreparam, cls, args, kwargs)})
    ).get_trace()
    ptr = ppoutine.trace(
        reparam(lambda: pmodel(pyrolite.sample), {"x": _make(preparam, cls, args, kwargs)})
    ).get_trace()
    # Same sites, shapes and observed flags, in the same order.
    assert _sites(ptr) == _sites(qtr)
    # Same log-joint at the same latent values.
    data = {
        name: site["value"].detach()
        for name, site in qtr.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and type(site["fn"]).__name__ != "_Subsample"
    }
    q_lp = (
        qpoutine.trace(
            qpoutine.condition(
                qpoutine.reparam(
                    lambda: qmodel(pyro.sample), {"x": _make(qreparam, cls, args, kwargs)}
                ),
                data,
            )
        )
        .get_trace()
        .log_prob_sum()
    )
    ptr = ppoutine.trace(
        ppoutine.condition(
            reparam(lambda: pmodel(pyrolite.sample), {"x": _make(preparam, cls, args, kwargs)}),
            data,
        )
    ).get_trace()
    assert float(ptr.log_prob_sum()) == pytest.approx(float(q_lp), rel=1e-4, abs=1e-4)
    # And the same value at the original site.
    qx = (
        qpoutine.trace(
            qpoutine.condition(
                qpoutine.reparam(
                    lambda: qmodel(pyro.sample), {"x": _make(qreparam, cls, args, kwargs)}
                ),
                data,
            )
        )
        .get_trace()
        .nodes["x"]["value"]
    )
    assert torch.allclose(ptr.nodes["x"]["value"], qx, rtol=1e-4, atol=1e-4)


def _strategy_model(sample, d, stable, projected_normal):
    a = sample("a", d.Normal(0.0, 1.0))
    sample("b", d.LogNormal(a, 1.0))
    sample("c", stable(1.5, 0.5, 1.0, 0.0))
    sample("e", projected_normal(torch.ones(3)))
    sample("f", d.Normal(0.0, 1.0), obs=torch.tensor(1.0))
    sample("g", stable(1.5, 0.5, 1.0, 0.0), obs=torch.tensor(1.0))
    sample("h", stable(1.5, 0.0, 1.0, 0.0), obs=torch.tensor(1.0))
    sample("i", d.RelaxedOneHotCategorical(torch.tensor(0.5), probs=torch.tensor([0.2, 0.8])))
    sample("j", d.Gamma(2.0, 2.0))
    sample("l", d.Normal(torch.zeros(2), 1.0).to_event(1))
    sample("q", d.Cauchy(0.0, torch.tensor(1.0)))


@pytest.mark.parametrize("strategy", ["AutoReparam", "MinimalReparam"])
def test_strategies_match_pyro(strategy):
    pyro.clear_param_store()
    pyrolite.clear_param_store()
    q = getattr(qreparam, strategy)()
    p = getattr(preparam, strategy)()
    qtr = qpoutine.trace(
        q(
            lambda: _strategy_model(
                pyro.sample, pyro_dist, pyro_dist.Stable, pyro_dist.ProjectedNormal
            )
        )
    ).get_trace()
    ptr = ppoutine.trace(
        p(lambda: _strategy_model(pyrolite.sample, pdist, PStable, PProjectedNormal))
    ).get_trace()
    names = {k: (type(v).__name__, getattr(v, "shape_params", None)) for k, v in q.config.items()}
    assert {
        k: (type(v).__name__, getattr(v, "shape_params", None)) for k, v in p.config.items()
    } == names
    assert _sites(ptr) == _sites(qtr)
    params = lambda tr: {
        n: tuple(s["value"].shape) for n, s in tr.nodes.items() if s["type"] == "param"
    }  # noqa: E731
    assert params(ptr) == params(qtr)


def _guided_model(sample, plate, d):
    def model():
        a = sample("a", d.Normal(0.0, 1.0))
        with plate("p", 3):
            b = sample("b", d.LogNormal(a, 1.0))
        sample("c", d.Normal(b, 1.0), obs=torch.ones(3))

    return model


def _set_params(store, values):
    with torch.no_grad():
        for name, value in values.items():
            store[name] = value


def test_structured_reparam_matches_pyro():
    from pyro.infer.autoguide import AutoStructured as QAutoStructured

    from pyrolite.infer.autoguide.structured import AutoStructured

    pyro.clear_param_store()
    pyrolite.clear_param_store()
    kw = dict(conditionals={"a": "normal", "b": "mvn"}, dependencies={"b": {"a": "linear"}})
    qmodel = _guided_model(pyro.sample, pyro.plate, pyro_dist)
    pmodel = _guided_model(pyrolite.sample, pyrolite.plate, pdist)
    qguide, pguide = QAutoStructured(qmodel, **kw), AutoStructured(pmodel, **kw)
    qguide(), pguide()
    # Move every param off its init, identically on both sides.
    with torch.no_grad():
        for _, p in qguide.named_parameters():
            p.add_(0.1 * torch.arange(p.numel()).reshape(p.shape).float().sin())
    qparams = {n: p.detach().clone() for n, p in qguide.named_parameters()}
    with torch.no_grad():
        for name, p in pguide.named_parameters():
            p.copy_(qparams[name])
    qrep = qreparam.StructuredReparam(qguide)
    prep = preparam.StructuredReparam(pguide)
    pyro.set_rng_seed(0)
    qtr = qpoutine.trace(qrep.reparam(qmodel)).get_trace()
    aux = {n: qtr.nodes[n]["value"].detach() for n in ("a_aux", "b_aux")}
    ptr = ppoutine.trace(ppoutine.condition(prep.reparam(pmodel), aux)).get_trace()
    qtr = qpoutine.trace(qpoutine.condition(qrep.reparam(qmodel), aux)).get_trace()
    assert _sites(ptr) == _sites(qtr)
    assert torch.allclose(ptr.nodes["b"]["value"], qtr.nodes["b"]["value"], atol=1e-5)
    assert float(ptr.log_prob_sum()) == pytest.approx(float(qtr.log_prob_sum()), abs=1e-4)
    out = prep.transform_samples(aux)
    assert torch.allclose(out["b"], qtr.nodes["b"]["value"], atol=1e-5)


def test_neutra_reparam_matches_pyro():
    # AutoMultivariateNormal: its transform has event_dim 1 in both libraries. (With
    # AutoDiagonalNormal Pyro's AffineTransform has event_dim 0, so Pyro adds each
    # coordinate's log-scale to the first site's density, broadcasting that site's prior
    # density over the latent vector; pyrolite sums the Jacobian first.)
    from pyro.infer.autoguide import AutoMultivariateNormal as QAutoMultivariateNormal

    from pyrolite.infer.autoguide.continuous import AutoMultivariateNormal

    pyro.clear_param_store()
    pyrolite.clear_param_store()
    qmodel = _guided_model(pyro.sample, pyro.plate, pyro_dist)
    pmodel = _guided_model(pyrolite.sample, pyrolite.plate, pdist)
    qguide, pguide = QAutoMultivariateNormal(qmodel), AutoMultivariateNormal(pmodel)
    qguide(), pguide()
    loc = torch.tensor([0.3, -0.2, 0.1, 0.5])
    tril = torch.tensor(
        [[0.5, 0, 0, 0], [0.3, 1.2, 0, 0], [0.0, -0.4, 0.8, 0], [0.1, 0.2, 0.3, 2.0]]
    )
    for guide in (qguide, pguide):
        guide.loc = torch.nn.Parameter(loc.clone())
        guide.scale_tril = tril.clone()
    qrep, prep = qreparam.NeuTraReparam(qguide), preparam.NeuTraReparam(pguide)
    z = {"a_shared_latent": torch.tensor([0.4, -1.0, 0.2, 1.5])}
    qtr = qpoutine.trace(qpoutine.condition(qrep.reparam(qmodel), z)).get_trace()
    ptr = ppoutine.trace(ppoutine.condition(prep.reparam(pmodel), z)).get_trace()
    assert _sites(ptr) == _sites(qtr)
    assert torch.allclose(ptr.nodes["b"]["value"], qtr.nodes["b"]["value"], atol=1e-5)
    assert float(ptr.log_prob_sum()) == pytest.approx(float(qtr.log_prob_sum()), abs=1e-4)
    samples = prep.transform_sample(z["a_shared_latent"])
    assert torch.allclose(samples["b"], qtr.nodes["b"]["value"], atol=1e-5)


def _gaussian_hmm(d):
    eye = torch.eye(2)
    mvn = d.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.2], [0.2, 0.5]]))
    obs = d.MultivariateNormal(torch.zeros(1), torch.tensor([[0.3]]))
    return d.GaussianHMM(mvn, 0.9 * eye, mvn, torch.ones(2, 1), obs, duration=3)


def test_conjugate_reparam_matches_pyro():
    from pyrolite.distributions.gaussian_hmm import GaussianHMM

    pdist_hmm = type("D", (), {"MultivariateNormal": pdist.MultivariateNormal})
    pdist_hmm.GaussianHMM = GaussianHMM
    like = {"loc": torch.tensor([[0.5], [1.0], [-1.0]]), "scale": 0.7}
    qhmm, phmm = _gaussian_hmm(pyro_dist), _gaussian_hmm(pdist_hmm)
    qlike = pyro_dist.Normal(**like).to_event(2)
    plike = pdist.Normal(**like).to_event(2)
    pyro.set_rng_seed(0)
    qtr = qpoutine.trace(
        qpoutine.reparam(lambda: pyro.sample("x", qhmm), {"x": qreparam.ConjugateReparam(qlike)})
    ).get_trace()
    ptr = ppoutine.trace(
        reparam(lambda: pyrolite.sample("x", phmm), {"x": preparam.ConjugateReparam(plike)})
    ).get_trace()
    assert _sites(ptr) == _sites(qtr)
    # The same importance weight log Z - log guide(x) as Pyro's, at pyrolite's draw.
    x = ptr.nodes["x"]["value"]
    _, log_normalizer = qhmm.conjugate_update(qlike)
    expected = log_normalizer - qlike.log_prob(x)
    assert float(ptr.log_prob_sum()) == pytest.approx(float(expected), abs=1e-4)


@pytest.mark.parametrize(
    "model_name,cls,args,kwargs",
    [
        ("normal_plate", "LocScaleReparam", (0.3,), {}),
        ("lognormal", "TransformReparam", (), {}),
        ("vector", "DiscreteCosineReparam", (), {}),
        ("vector", "SplitReparam", ([2, 4], -1), {}),
    ],
)
def test_replayed_value_is_kept_as_latent_like_pyro(model_name, cls, args, kwargs):
    # A value replayed into the original site (inside the reparam) fixes the auxiliary
    # site's value, which stays latent.
    qmodel = _models(pyro_dist, pyro_dist.Stable, pyro_dist.ProjectedNormal)[model_name]
    pmodel = _models(pdist, PStable, PProjectedNormal)[model_name]
    pyro.set_rng_seed(2)
    qbase = qpoutine.trace(lambda: qmodel(pyro.sample)).get_trace()
    if cls == "SplitReparam":
        qbase.nodes["x"]["value"] = torch.linspace(-1.0, 2.0, 6)
    pbase = ppoutine.trace(lambda: pmodel(pyrolite.sample)).get_trace()
    pbase.nodes["x"]["value"] = qbase.nodes["x"]["value"]
    qtr = qpoutine.trace(
        qpoutine.reparam(
            qpoutine.replay(lambda: qmodel(pyro.sample), trace=qbase),
            {"x": _make(qreparam, cls, args, kwargs)},
        )
    ).get_trace()
    ptr = ppoutine.trace(
        reparam(
            ppoutine.replay(lambda: pmodel(pyrolite.sample), trace=pbase),
            {"x": _make(preparam, cls, args, kwargs)},
        )
    ).get_trace()
    assert _sites(ptr) == _sites(qtr)
    for name, *_ in _sites(qtr):
        assert torch.allclose(ptr.nodes[name]["value"], qtr.nodes[name]["value"], atol=1e-5)
    assert float(ptr.log_prob_sum()) == pytest.approx(float(qtr.log_prob_sum()), abs=1e-4)
