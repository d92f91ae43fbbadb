"""Every tutorial notebook runs in smoke mode (the same code, few steps) and passes the
assertions written in it; the notebooks in git carry no outputs."""

import json
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
sys.path.insert(0, str(TUTORIALS))
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode_and_writes_its_figures(path, tmp_path):
    pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    import run_notebooks

    run_notebooks.execute(path, smoke=True, figures=tmp_path, timeout=600)
    assert list(tmp_path.glob("*.png")), f"{path.name} saved no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_outputs_are_stripped(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: strip outputs before committing (python tutorials/strip_outputs.py)"
            )


def test_there_are_tutorial_notebooks():
    assert len(NOTEBOOKS) >= 7, [p.name for p in NOTEBOOKS]
