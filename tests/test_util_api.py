"""pyrolite.util's Pyro-facing helpers: NaN/inf warnings, jit filters, optional, timed,
RNG state, and the model/guide trace checks, against Pyro where it is installed."""

import math
import time
import warnings

import pytest
import torch

import pyrolite
import pyrolite.distributions as dist
import pyrolite.util as util
from pyrolite import poutine


def _messages(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args, **kwargs)
    return [(w.category, str(w.message)) for w in caught]


def test_torch_isnan_isinf_on_numbers_and_tensors():
    assert util.torch_isnan(float("nan")) is True and util.torch_isnan(1) is False
    assert util.torch_isnan(torch.tensor([1.0, math.nan])).item() is True
    assert util.torch_isnan(torch.tensor([1.0, 2.0])).item() is False
    assert util.torch_isinf(math.inf) and util.torch_isinf(-math.inf)
    assert not util.torch_isinf(2.0)
    assert util.torch_isinf(torch.tensor([1.0, -math.inf])).item() is True
    assert util.torch_isinf(torch.tensor([1, 2])).item() is False


def test_warn_if_nan_message_location_and_return_value():
    x = torch.tensor([1.0, math.nan])
    assert _messages(lambda: util.warn_if_nan(x, "hi")) == [(UserWarning, "Encountered NaN: hi")]
    assert _messages(lambda: util.warn_if_nan(torch.tensor([1.0]), "hi")) == []
    assert util.warn_if_nan(x) is x and math.isnan(util.warn_if_nan(math.nan))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        util.warn_if_nan(math.nan, "fl", filename="foo.py", lineno=7)
    assert (caught[0].filename, caught[0].lineno) == ("foo.py", 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        util.warn_if_nan(math.nan)
    assert caught[0].filename == __file__  # points at the caller


def test_warn_if_nan_and_inf_watch_the_gradient():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = util.warn_if_nan(x, "gx")
    assert _messages(lambda: (y * math.nan).sum().backward()) == [
        (UserWarning, "Encountered NaN: backward gx")
    ]
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = util.warn_if_inf(x, "gi")
    assert _messages(lambda: (y * math.inf).sum().backward()) == [
        (UserWarning, "Encountered +inf: backward gi")
    ]


@pytest.mark.parametrize(
    "value, posinf, neginf, expected",
    [
        (math.inf, False, False, ["Encountered +inf: m"]),
        (math.inf, True, False, []),
        (-math.inf, True, False, ["Encountered -inf: m"]),
        (
            torch.tensor([math.inf, -math.inf]),
            False,
            False,
            ["Encountered +inf: m", "Encountered -inf: m"],
        ),
        (torch.tensor([math.inf, -math.inf]), False, True, ["Encountered +inf: m"]),
        (torch.tensor([math.inf, -math.inf]), True, True, []),
        (torch.tensor([1.0, 2.0]), False, False, []),
    ],
)
def test_warn_if_inf_respects_allowed_signs(value, posinf, neginf, expected):
    got = _messages(lambda: util.warn_if_inf(value, "m", posinf, neginf))
    assert got == [(UserWarning, m) for m in expected]


def test_nan_inf_helpers_agree_with_pyro():
    pyro_util = pytest.importorskip("pyro.util")
    values = [math.nan, 1.0, math.inf, -math.inf, torch.tensor([1.0, math.nan, math.inf])]
    for value in values:
        for name in ("torch_isnan", "torch_isinf"):
            ours, theirs = getattr(util, name)(value), getattr(pyro_util, name)(value)
            assert bool(ours) == bool(theirs)
        for flags in [(False, False), (True, False), (False, True)]:
            assert _messages(util.warn_if_inf, value, "m", *flags) == _messages(
                pyro_util.warn_if_inf, value, "m", *flags
            )
        assert _messages(util.warn_if_nan, value, "m") == _messages(
            pyro_util.warn_if_nan, value, "m"
        )


def test_torch_float_and_jit_iter():
    assert util.torch_float(3) == 3.0 and isinstance(util.torch_float(3), float)
    assert util.torch_float(torch.tensor([1, 2])).dtype == torch.float32
    parts = util.jit_iter(torch.arange(6.0).reshape(2, 3))
    assert [p.tolist() for p in parts] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_optional_enters_only_when_asked():
    with util.optional(torch.no_grad(), True):
        assert not torch.is_grad_enabled()
    with util.optional(torch.no_grad(), False):
        assert torch.is_grad_enabled()


def test_timed_measures_elapsed_seconds():
    with util.timed() as t:
        time.sleep(0.02)
    assert t.elapsed == pytest.approx(t.end - t.start)
    assert 0.015 < t.elapsed < 1.0


def test_ignore_experimental_warning_hides_only_experimental_warnings():
    def emit():
        with util.ignore_experimental_warning():
            warnings.warn("x", util.ExperimentalWarning)
            warnings.warn("y", UserWarning)

    assert _messages(emit) == [(UserWarning, "y")]
    assert issubclass(util.ExperimentalWarning, UserWarning)


def test_ignore_jit_warnings_filters_only_while_tracing():
    def outside():
        with util.ignore_jit_warnings():
            warnings.warn("x", torch.jit.TracerWarning)

    assert _messages(outside) == [(torch.jit.TracerWarning, "x")]

    def traced(x):
        with util.ignore_jit_warnings():
            return x * x[0].item()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = torch.jit.trace(traced, (torch.ones(2),))
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert fn(torch.ones(2)).tolist() == [1.0, 1.0]


def test_rng_state_round_trip():
    util.set_rng_seed(3)
    state = util.get_rng_state()
    a = torch.rand(3)
    util.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))


def _trace(fn):
    return poutine.trace(fn).get_trace()


def _model():
    pyrolite.sample("a", dist.Normal(0.0, 1.0))
    with pyrolite.plate("p", 3, subsample_size=2):
        pyrolite.sample("b", dist.Normal(0.0, 1.0))


def test_check_model_guide_match_warns_and_raises_like_pyro():
    def guide_extra():
        pyrolite.sample("a", dist.Normal(0.0, 1.0))
        pyrolite.sample("c", dist.Normal(0.0, 1.0))

    got = _messages(lambda: util.check_model_guide_match(_trace(_model), _trace(guide_extra)))
    texts = " ".join(m for _, m in got)
    assert "['c']" in texts and "['b']" in texts and len(got) == 2

    def guide_plate():
        pyrolite.sample("a", dist.Normal(0.0, 1.0))
        with pyrolite.plate("p", 3, subsample_size=2):
            pyrolite.sample("b", dist.Normal(0.0, 1.0))
        with pyrolite.plate("q", 3, subsample_size=2):
            pass

    got = _messages(lambda: util.check_model_guide_match(_trace(_model), _trace(guide_plate)))
    assert got == [
        (
            UserWarning,
            "Found plate statements in guide but not model: ['q']. Open the same plates in "
            "the model (same names), or remove them from the guide.",
        )
    ]

    def guide_event():
        pyrolite.sample("a", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        with pyrolite.plate("p", 3, subsample_size=2):
            pyrolite.sample("b", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="event dims of site 'a'"):
        util.check_model_guide_match(_trace(_model), _trace(guide_event))


def test_check_traces_match():
    util.check_traces_match(_trace(_model), _trace(_model))
    with pytest.raises(ValueError, match="Site dims disagree at site 'a'"):
        util.check_traces_match(
            _trace(lambda: pyrolite.sample("a", dist.Normal(0.0, 1.0))),
            _trace(lambda: pyrolite.sample("a", dist.Normal(torch.zeros(2), 1.0))),
        )
    with pytest.raises(ValueError, match="appear in only one"):
        util.check_traces_match(_trace(_model), _trace(lambda: None))


def test_check_if_enumerated_names_the_sites():
    def guide():
        pyrolite.sample("a", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        pyrolite.sample("b", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
        pyrolite.sample("c", dist.Bernoulli(0.5))

    got = _messages(lambda: util.check_if_enumerated(_trace(guide)))
    assert got == [
        (
            UserWarning,
            "Found sample sites configured for enumeration: a, b\n"
            "If you want to enumerate sites, you need to use TraceEnum_ELBO instead.",
        )
    ]
    assert _messages(lambda: util.check_if_enumerated(_trace(_model))) == []


E = {"enumerate": "parallel"}


def _enum_model():
    with pyrolite.plate("p", 3):
        pyrolite.sample("w", dist.Bernoulli(0.5))
    with pyrolite.plate("q", 2, dim=-2):
        pyrolite.sample("v", dist.Bernoulli(0.5))
    pyrolite.sample("y", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))


def _enum_guide():
    with pyrolite.plate("p", 3):
        pyrolite.sample("w", dist.Bernoulli(0.5), infer=E)
    with pyrolite.plate("q", 2, dim=-2):
        pyrolite.sample("v", dist.Bernoulli(0.5), infer=E)


def test_check_traceenum_requirements_warns_about_sites_after_enumerated_plates():
    gt = poutine.trace(poutine.enum(_enum_guide, first_available_dim=-3)).get_trace()
    mt = poutine.trace(poutine.replay(_enum_model, trace=gt)).get_trace()
    got = _messages(lambda: util.check_traceenum_requirements(mt, gt))
    expected = [
        ("model", "y", "w", "p"),
        ("model", "y", "v", "q"),
    ]
    assert got == [
        (
            RuntimeWarning,
            f'at {role} site "{site}", possibly invalid dependency.\n'
            f'  Expected site "{site}" to precede sites "{other}"\n'
            f'  to avoid breaking independence of plates "{plate}"',
        )
        for role, site, other, plate in expected
    ]


def test_check_traceenum_requirements_matches_pyro_on_sample_sites():
    pyro = pytest.importorskip("pyro")
    import pyro.distributions as pdist

    def model(lib, d):
        def fn():
            with lib.plate("p", 3):
                lib.sample("w", d.Bernoulli(0.5))
            lib.sample("z", d.Bernoulli(0.5))
            lib.sample("y", d.Normal(0.0, 1.0), obs=torch.tensor(0.0))

        return fn

    def guide(lib, d):
        def fn():
            lib.sample("z", d.Bernoulli(0.5))
            with lib.plate("p", 3):
                lib.sample("w", d.Bernoulli(0.5), infer=E)

        return fn

    results = []
    for lib, d in ((pyrolite, dist), (pyro, pdist)):
        gt = lib.poutine.trace(lib.poutine.enum(guide(lib, d), first_available_dim=-2)).get_trace()
        mt = lib.poutine.trace(lib.poutine.replay(model(lib, d), trace=gt)).get_trace()
        results.append(_messages(lib.util.check_traceenum_requirements, mt, gt))
    assert results[0] == results[1] and len(results[0]) == 2


def test_site_is_subsample_and_check_site_shape_are_exported():
    tr = _trace(_model)
    assert util.site_is_subsample(tr.nodes["p"]) and not util.site_is_subsample(tr.nodes["b"])
    site = dict(tr.nodes["b"], unscaled_log_prob=torch.zeros(2))
    util.check_site_shape(site, 1)
    site["unscaled_log_prob"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"plate\('p'\) expects size 2 at dim -1, got 5"):
        util.check_site_shape(site, 1)
