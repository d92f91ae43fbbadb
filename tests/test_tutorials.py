"""Every tutorial runs as a script (the seeds' programs, ported), on a small step budget."""

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def _coin_beta_guide_mean_is_near_exact(out: str) -> None:
    # "Mean \t <exact> \t <svi>" in the Beta-guide table comes first
    exact, svi = map(float, re.search(r"^Mean\s+([\d.]+)\s+([\d.]+)", out, re.M).groups())
    assert abs(svi - exact) < 0.02


def _mixture_recovers_both_modes(out: str) -> None:
    fraction = float(re.search(r"fraction in the upper mode ([\d.]+)", out).group(1))
    assert abs(fraction - 0.5) < 0.1


def _regression_loss_decreases(out: str) -> None:
    # the script trains twice (hand-written guide, then an autoguide); check the last run
    last_run = out.split("step:     0,")[-1]
    losses = [float(v) for v in re.findall(r"ELBO loss: ([\d.]+)", "step: 0," + last_run)]
    assert len(losses) >= 2 and losses[-1] < 0.5 * losses[0]


# script -> (small-budget arguments, what its output must show)
SCRIPTS = {
    "coin_fit.py": (["--steps", "200"], _coin_beta_guide_mean_is_near_exact),
    "seed001_guides.py": (
        ["--steps", "200", "--auto-steps", "200"],
        _mixture_recovers_both_modes,
    ),
    "seed003_linear_regression.py": (
        ["--steps", "200", "--samples", "50"],
        _regression_loss_decreases,
    ),
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_tutorial_script_runs_and_learns(script):
    arguments, check = SCRIPTS[script]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    check(done.stdout)


def test_seed004_score_function_example_moves_toward_the_exact_posterior(capsys):
    module = runpy.run_path(str(TUTORIALS / "seed004_score_function.py"))
    pyro = module["pyro"]
    pyro.set_rng_seed(0)
    example = module["BernoulliBetaExample"](max_steps=1000)
    example.do_inference(use_decaying_avg_baseline=False)
    assert "within 0.8 of the exact posterior after" in capsys.readouterr().out
    # it starts at Beta(15, 15), 1.0 from the exact Beta(16, 14) in each parameter
    a, b = pyro.param("alpha_q").item(), pyro.param("beta_q").item()
    assert abs(a - 16) < 0.8 and abs(b - 14) < 0.8
