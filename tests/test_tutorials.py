"""Every tutorial runs as a script (the seeds' programs, ported), on a small step budget."""

import os
import re
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


def _baselines_reduce_variance_and_steps(out: str) -> None:
    ratio = float(re.search(r"gradient variance ratio decaying/none: ([\d.]+)", out).group(1))
    assert ratio < 0.5
    means = dict(re.findall(r"^\s*(none|decaying|neural)\s+([\d.]+)", out, re.M))
    assert float(means["decaying"]) < float(means["none"])
    assert float(means["neural"]) < 2000  # converged within the budget


def _mixture_locs_and_map_assignments_are_recovered(out: str) -> None:
    locs = sorted(map(float, re.search(r"^locs = \[(.*)\]", out, re.M).group(1).split(",")))
    assert abs(locs[0] - 0.5) < 0.1 and abs(locs[1] - 11.0) < 0.1
    # data [0, 1, 10, 11, 12]: the first two points share a component, the last three the other
    assignment = re.search(r"MAP assignment \(temperature=0\): \[(.*)\]", out).group(1)
    a = [int(v) for v in assignment.split(",")]
    assert a[0] == a[1] != a[2] == a[3] == a[4]


# script -> (small-budget arguments, what its output must show)
SCRIPTS = {
    "coin_fit.py": (["--steps", "200"], _coin_beta_guide_mean_is_near_exact),
    "seed001_guides.py": (
        ["--steps", "200", "--auto-steps", "200"],
        _mixture_recovers_both_modes,
    ),
    "seed004_score_function.py": (
        ["--seeds", "2", "--max-steps", "2000", "--draws", "100"],
        _baselines_reduce_variance_and_steps,
    ),
    "seed003_linear_regression.py": (
        ["--steps", "200", "--samples", "50"],
        _regression_loss_decreases,
    ),
    "gaussian_mixture.py": (
        ["--steps", "100", "--init-tries", "20", "--no-plot"],
        _mixture_locs_and_map_assignments_are_recovered,
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
