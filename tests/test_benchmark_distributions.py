"""``benchmarks/distributions.py`` compares like with like: each family's pyrolite and Pyro
instances (built from one spec at a tiny batch) give the same ``log_prob``, each transform pair
the same log|det J|, and the report replaces only its own section of ``RESULTS.md``."""

import pytest
import torch

pyro_dist = pytest.importorskip("pyro.distributions")

from benchmarks import distributions as bench  # noqa: E402

TINY = 4
FAMILY_NAMES = sorted(bench.family_specs(TINY))
TRANSFORM_NAMES = sorted(bench.transform_specs(TINY))


def test_every_pyro_name_has_a_spec_or_a_reason():
    unlisted = [
        n for n in pyro_dist.__all__ if n not in FAMILY_NAMES and n not in bench.NOT_FAMILIES
    ]
    assert unlisted == []


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_family_pair_has_the_same_log_prob(name):
    pair = bench.build_family(name, batch=TINY)
    assert pair.errors == {}
    if ("pyro", "log_prob") in {(lib, op) for lib, op, _ in pair.spec.skip}:
        # Pyro's GaussianScaleMixture scores one value at a time
        pyro_instance = pair.instances["pyro"]
        expected = torch.stack([pyro_instance.log_prob(v) for v in pair.value])
    else:
        try:
            expected = bench.log_prob_call(pair, "pyro")()
        except NotImplementedError:  # LinearHMM: no log_prob in Pyro, nor in pyrolite
            with pytest.raises(NotImplementedError):
                bench.log_prob_call(pair, "pyrolite")()
            return
    # One log-density per value: no accidental broadcasting of parameters against values
    # (GroupedNormalNormal's log_prob is one marginal likelihood of all observations).
    if pair.spec.call is None and name != "GroupedNormalNormal":
        instance = pair.instances["pyro"]
        value_shape = pair.value.shape[: pair.value.dim() - len(instance.event_shape)]
        assert expected.shape == torch.broadcast_shapes(value_shape, instance.batch_shape)
    for lib in set(pair.instances) - {"pyro"}:
        actual = bench.log_prob_call(pair, lib)()
        assert actual.shape == expected.shape, lib
        assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-4, equal_nan=True), lib


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_transform_pair_computes_the_same_thing(name):
    pair = bench.build_transform(name, batch=TINY)
    assert pair.note == ""  # state_dict keys match, so Pyro's weights were loaded
    with torch.no_grad():
        try:
            expected = pair.call("pyro")()
        except NotImplementedError:  # Normalize, SoftplusLowerCholesky: no log|det J|
            pair.forward_only = True
            expected = pair.call("pyro")()
        actual = pair.call("pyrolite")()
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_sequential_forward_matches_discrete_hmm():
    from pyrolite.distributions import DiscreteHMM, Normal

    torch.manual_seed(0)
    init, trans, locs = torch.randn(3), torch.randn(3, 3), torch.tensor([-2.0, 0.0, 2.0])
    hmm = DiscreteHMM(init, trans, Normal(locs, 1.0), duration=7)
    y = torch.randn(2, 7)
    obs = torch.distributions.Normal(locs, 1.0).log_prob(y[..., None])
    assert torch.allclose(bench.sequential_forward(init, trans, obs), hmm.log_prob(y), atol=1e-5)


def test_write_section_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# top\n\n## Data-parallel\n\nkeep\n\n# GPU: x\n\n## GPU W1\n\nkeep gpu\n")
    bench.write_section(path, [bench.SECTION, "", "first"])
    bench.write_section(path, [bench.SECTION, "", "second"])
    text = path.read_text()
    assert text.count(bench.SECTION) == 1 and "second" in text and "first" not in text
    assert text.index("keep\n") < text.index(bench.SECTION) < text.index("# GPU: x")
    assert text.endswith("## GPU W1\n\nkeep gpu\n")
