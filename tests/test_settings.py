"""pyrolite.settings: get/set/context/register, validators, and Pyro 1.9's registered settings."""

import math
import sys
import types

import pytest
import torch

import pyrolite
import pyrolite.util
from pyrolite import settings

PYRO_DEFAULTS = {
    "binomial_approx_log_prob_tol": 0.0,
    "binomial_approx_sample_thresh": math.inf,
    "cholesky_relative_jitter": 4.0,
    "module_local_params": False,
    "validate_distributions_pyro": True,
    "validate_distributions_torch": True,
    "validate_infer": True,
    "validate_poutine": True,
}


@pytest.fixture(autouse=True)
def _restore_settings():
    saved = settings.get()
    yield
    settings.set(**saved)


def test_get_lists_every_setting_pyro_registers_with_its_default():
    assert settings.get() == PYRO_DEFAULTS
    assert settings.get("cholesky_relative_jitter") == 4.0


def test_defaults_match_pyro():
    pyro = pytest.importorskip("pyro")
    assert settings.get() == pyro.settings.get()


def test_set_changes_the_value_and_unknown_alias_is_a_key_error():
    settings.set(cholesky_relative_jitter=0.5, binomial_approx_sample_thresh=100.0)
    assert settings.get("cholesky_relative_jitter") == 0.5
    assert settings.get("binomial_approx_sample_thresh") == 100.0
    with pytest.raises(KeyError, match="nope"):
        settings.set(nope=1)
    with pytest.raises(KeyError, match="nope"):
        settings.get("nope")


@pytest.mark.parametrize(
    "alias, bad, good",
    [
        ("binomial_approx_sample_thresh", [0.0, 1, "a", -1.0], [2.0, math.inf]),
        ("binomial_approx_log_prob_tol", [0, 1, -1.0], [0.0, 1.0, math.inf]),
        ("cholesky_relative_jitter", [-1.0, "a"], [0.0, 0, 1, 2.5]),
        ("module_local_params", [0, 1, None], [True, False]),
    ],
)
def test_validators_accept_and_reject_what_pyro_does(alias, bad, good):
    before = settings.get(alias)
    for value in bad:
        # AssertionError as in Pyro (and ValueError, naming the setting)
        with pytest.raises(AssertionError, match=alias):
            settings.set(**{alias: value})
        with pytest.raises(ValueError):
            settings.set(**{alias: value})
        assert settings.get(alias) == before
    for value in good:
        settings.set(**{alias: value})
        assert settings.get(alias) == value


def test_validators_agree_with_pyro():
    pyro = pytest.importorskip("pyro")
    cases = [
        ("binomial_approx_sample_thresh", [0.0, 1, 2.0, math.inf]),
        ("binomial_approx_log_prob_tol", [0, 0.0, 1, 1.0]),
        ("cholesky_relative_jitter", [-1.0, 0, 2.5]),
        ("module_local_params", [0, True]),
    ]
    saved = pyro.settings.get()
    try:
        for alias, values in cases:
            for value in values:
                outcomes = []
                for module in (pyro.settings, settings):
                    try:
                        module.set(**{alias: value})
                        outcomes.append(True)
                    except AssertionError:
                        outcomes.append(False)
                assert outcomes[0] == outcomes[1], (alias, value)
    finally:
        pyro.settings.set(**saved)


def test_a_failed_set_changes_nothing():
    with pytest.raises(AssertionError):
        settings.set(cholesky_relative_jitter=1.0, module_local_params=3)
    assert settings.get("cholesky_relative_jitter") == 4.0


def test_context_overrides_and_restores_even_on_error():
    with settings.context(cholesky_relative_jitter=0.25, validate_infer=False):
        assert settings.get("cholesky_relative_jitter") == 0.25
        assert settings.get("validate_infer") is False
    assert settings.get("cholesky_relative_jitter") == 4.0
    assert settings.get("validate_infer") is True
    with pytest.raises(RuntimeError):
        with settings.context(cholesky_relative_jitter=0.75):
            raise RuntimeError
    assert settings.get("cholesky_relative_jitter") == 4.0


def test_context_works_as_a_decorator():
    @settings.context(cholesky_relative_jitter=0.5)
    def read():
        return settings.get("cholesky_relative_jitter")

    assert read() == 0.5 and read() == 0.5
    assert settings.get("cholesky_relative_jitter") == 4.0


def test_register_binds_a_module_constant_and_a_class_attribute():
    module = types.ModuleType("_pyrolite_settings_test_mod")

    class Thing:
        size = 3

    module.Thing, module.LIMIT = Thing, 1.5
    sys.modules[module.__name__] = module
    try:
        settings.register("test_thing_size", module.__name__, "Thing.size")

        @settings.register("test_limit", module.__name__, "LIMIT")
        def _positive(value):
            assert value > 0

        assert _positive(1) is None  # the decorator returns the validator itself
        assert settings.get("test_thing_size") == 3 and settings.get("test_limit") == 1.5
        settings.set(test_thing_size=7, test_limit=2.5)
        assert Thing.size == 7 and module.LIMIT == 2.5
        with pytest.raises(AssertionError):
            settings.set(test_limit=-1.0)
        assert module.LIMIT == 2.5
        with settings.context(test_limit=9.0):
            assert module.LIMIT == 9.0
        assert module.LIMIT == 2.5
        with pytest.raises(AssertionError, match="identifier"):
            settings.register("not an alias", module.__name__, "LIMIT")
    finally:
        for alias in ("test_thing_size", "test_limit"):
            settings._REGISTRY.pop(alias, None)
        del sys.modules[module.__name__]


def test_validation_settings_drive_pyrolite_and_torch_checks():
    settings.set(validate_distributions_torch=False)
    assert torch.distributions.Distribution._validate_args is False
    torch.distributions.Normal(0.0, -1.0)  # no check while off
    settings.set(validate_distributions_torch=True)
    with pytest.raises(ValueError, match="scale"):
        torch.distributions.Normal(0.0, -1.0)
    settings.set(validate_infer=False)
    assert pyrolite.util.is_validation_enabled() is False
    # pyrolite has one switch for its own checks: the three Pyro aliases share it
    assert settings.get("validate_poutine") is False
    assert settings.get("validate_distributions_pyro") is False
    settings.set(validate_poutine=True)
    assert pyrolite.util.is_validation_enabled() is True


def test_enable_validation_is_seen_by_the_settings():
    pyrolite.enable_validation(False)
    assert not any(v for k, v in settings.get().items() if k.startswith("validate_"))
    pyrolite.enable_validation(True)
    assert all(v for k, v in settings.get().items() if k.startswith("validate_"))


def test_settings_held_until_their_module_defines_the_attribute():
    # module_local_params lives in pyrolite.nn.module once that module reads it; until
    # then the registry holds the value, so get/set/context still round-trip.
    with settings.context(module_local_params=True):
        assert settings.get("module_local_params") is True
    assert settings.get("module_local_params") is False
