"""Strip outputs and execution counts from the tutorial notebooks (what git keeps).

python tutorials/strip_outputs.py [paths...]     # default: tutorials/*.ipynb
"""

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Strip ``path`` in place; whether it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for p in paths:
        if strip(p):
            print(f"stripped {p}")
