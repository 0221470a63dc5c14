"""Every reference lab stores at least two figures, and the labs from 07 on, which train
and diagnose, at least three (docs/design.md §7: a lab is for looking as much as for
computing). The figures are the PNG outputs `segcourse lab run` stores; nbval does
not compare them, so this is what notices a lab whose figures were lost or never drawn."""

from pathlib import Path

import pytest

from segcourse.labs.catalog import LABS
from segcourse.labs.notebook import read_notebook

ROOT = Path(__file__).resolve().parents[2]
AVAILABLE = [lab for lab in LABS if lab.available]


def least(lab) -> int:
    """The figures a lab must store: three from lab 07 on, two before."""
    return 3 if lab.number >= 7 else 2


def stored_figures(notebook) -> int:
    """The number of PNG outputs stored in the notebook's code cells."""
    return sum("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.slug)
def test_reference_lab_stores_enough_figures(lab):
    found = stored_figures(read_notebook(ROOT / lab.notebook))
    assert found >= least(lab), (
        f"{lab.notebook} stores {found} figure(s), fewer than {least(lab)}: add a figure worth "
        f"looking at, then store the outputs (segcourse lab run {lab.notebook} --profile cpu)")


def test_the_count_sees_figures_and_nothing_else(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
    notebook = new_notebook(cells=[
        new_markdown_cell("![a picture in prose](picture.png)"),
        new_code_cell("plt.show()", outputs=[new_output("display_data", data=png)]),
        new_code_cell("fig", outputs=[new_output("execute_result", data=png,
                                                 execution_count=1)]),
        new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")]),
        new_code_cell("html", outputs=[new_output("display_data",
                                                  data={"text/html": "<b>no</b>"})]),
    ])
    path = tmp_path / "lab.ipynb"
    nbformat.write(notebook, path)
    assert stored_figures(read_notebook(path)) == 2
