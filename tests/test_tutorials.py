"""Every tutorial runs as a script (the seeds' programs, ported), on a small step budget."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"

SCRIPTS = {
    "coin_fit.py": ["--steps", "200"],
    "seed001_guides.py": ["--steps", "200", "--auto-steps", "200"],
    "seed003_linear_regression.py": ["--steps", "200", "--samples", "50"],
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_tutorial_script_runs(script):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / script), *SCRIPTS[script]],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the tutorial printed nothing"


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
