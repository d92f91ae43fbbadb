"""Execute the tutorial notebooks, as CI does (smoke mode) or in full.

    python tutorials/run_notebooks.py              # every notebook, full run: figures/*.png
    python tutorials/run_notebooks.py --smoke      # the same code on a few steps
    python tutorials/run_notebooks.py 01_svi_part1 # some of them
    python tutorials/run_notebooks.py --save DIR   # also keep the executed notebooks

A notebook reads two environment variables: ``PYROLITE_SMOKE=1`` (few steps, looser
tolerances, the same code path) and ``PYROLITE_FIGURES`` (where its PNGs go; default
``tutorials/figures`` for a full run, a temporary folder for a smoke run). Each notebook
asserts its key numbers itself, so a failed assertion fails the run (``nbclient`` raises
``CellExecutionError`` naming the cell).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, List, Optional

TUTORIALS = Path(__file__).resolve().parent


def notebooks(names: Iterable[str] = ()) -> List[Path]:
    """The tutorial notebooks (those named, by file stem, if any), in order."""
    found = sorted(TUTORIALS.glob("*.ipynb"))
    wanted = list(names)
    if not wanted:
        return found
    by_stem = {p.stem: p for p in found}
    missing = [n for n in wanted if n not in by_stem]
    if missing:
        raise SystemExit(f"no such notebook(s): {missing}; have {sorted(by_stem)}")
    return [by_stem[n] for n in wanted]


def execute(path: Path, smoke: bool, figures: Optional[Path] = None, timeout: int = 1800):
    """Run notebook ``path`` top to bottom in a fresh kernel (cwd: ``tutorials/``) and
    return the executed notebook; raises on the first cell that fails."""
    import nbclient
    import nbformat

    if figures is None:
        # A smoke run's figures must not replace the full run's, which are kept in git.
        figures = (
            Path(tempfile.mkdtemp(prefix="pyrolite-smoke-")) if smoke else TUTORIALS / "figures"
        )
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in ("PYROLITE_SMOKE", "PYROLITE_FIGURES", "MPLBACKEND")}
    # The kernel inherits this process's environment.
    os.environ.update(
        PYROLITE_SMOKE="1" if smoke else "0", PYROLITE_FIGURES=str(figures), MPLBACKEND="Agg"
    )
    try:
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(TUTORIALS)}},
        )
        client.execute()
        return nb
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file stems (default: all)")
    parser.add_argument("--smoke", action="store_true", help="few steps, as CI runs them")
    parser.add_argument("--figures", type=Path, default=None, help="where PNGs go")
    parser.add_argument("--save", type=Path, default=None, help="keep executed notebooks here")
    args = parser.parse_args(argv)
    import nbformat

    for path in notebooks(args.names):
        started = time.perf_counter()
        nb = execute(path, args.smoke, args.figures)
        print(f"{path.name}: ok in {time.perf_counter() - started:.0f} s", flush=True)
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.save / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
