import subprocess
import sys

import nbformat

from segcourse.cli import main
from segcourse.labs.catalog import LABS


def test_info_reports_environment_profile_and_labs():
    result = subprocess.run([sys.executable, "-m", "segcourse", "info"], capture_output=True,
                            text=True, check=True)
    assert "backend       tensorflow" in result.stdout
    assert "profile       cpu profile" in result.stdout
    for lab in LABS:
        assert lab.title in result.stdout


def test_lab_check_reports_problems_and_fails(tmp_path, capsys):
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), path)
    assert main(["lab", "check", str(path)]) == 1
    assert "the first cell must be the setup cell" in capsys.readouterr().out


def test_lab_run_stores_outputs_under_the_requested_profile(tmp_path):
    path = tmp_path / "lab.ipynb"
    cell = nbformat.v4.new_code_cell("import os; print(os.environ['SEGCOURSE_PROFILE'])")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    assert main(["lab", "run", "--profile", "gpu", str(path)]) == 0
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "gpu\n"


def test_analyze_prints_fields_and_the_per_layer_summary(capsys):
    assert main(["analyze", "unet", "--preset", "cpu", "--image-size", "64",
                 "--option", "depth=2"]) == 0
    out = capsys.readouterr().out
    assert "receptive fields of" in out and "per-layer summary of" in out
    score_field = next(line for line in out.splitlines() if line.startswith("score ")
                       and "Conv2D" in line)
    assert score_field.split()[3] == "44"  # depth-2 U-Net: see tests/analysis
    assert "multiply-accumulates" in out


def test_analyze_reads_a_saved_model(tmp_path, capsys):
    from segcourse import models

    path = tmp_path / "m.keras"
    models.build("fcn8s", 3, (64, 64, 3), preset="cpu").save(path)
    assert main(["analyze", str(path), "--fields-only"]) == 0
    out = capsys.readouterr().out
    assert "per-layer summary" not in out
    assert any(line.startswith("score ") and line.split()[-1] == "0" for line in out.splitlines())
