"""Bad input, tried as a user would, through the ``segcourse`` command: each gets a sentence
that names the value and the fix (exit status 2, no traceback), or correct behaviour — never a
silent wrong score, never a result overwritten. ``docs/bad-inputs.md`` is the table of these
cases; the last test here keeps that table true.

Cases inside the library (masks, options, losses, metrics, downloads, resumed runs) are tested
in their own modules; the table names the test of each."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcourse.cli import main

ROOT = Path(__file__).resolve().parents[1]


def say(capsys, code, argv):
    """Run the command, check its status, return stderr + stdout; never a traceback."""
    assert main(argv) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err + captured.out


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small untrained 3-class model saved as .keras (predict needs no training to be tested:
    the same input must give the same labels)."""
    from segcourse import models

    path = tmp_path_factory.mktemp("model") / "plain.keras"
    models.build("plain", 3, (32, 32, 3), depth=2, filters=8).save(path)
    return path


def test_lab_check_reads_every_file_and_explains_non_notebooks(tmp_path, capsys):
    files = {"object": "{}", "list": "[]", "text": "not json", "empty": ""}
    for name, content in files.items():
        (tmp_path / f"{name}.ipynb").write_text(content)
    lab = ROOT / "notebooks" / "00_welcome.ipynb"
    paths = [str(tmp_path / f"{name}.ipynb") for name in files]
    out = say(capsys, 1, ["lab", "check", *paths, str(lab), str(tmp_path / "missing.ipynb")])
    assert "its JSON is an object without cells" in out and "its JSON is a list" in out
    assert "unreadable notebook (not JSON)" in out and "empty file" in out
    assert f"{lab}: ok" in out  # the files after the bad ones are checked too
    assert "missing.ipynb: 1 problem(s)" in out and "No such file" in out


def test_predict_reads_a_16_bit_greyscale_photo_as_the_same_picture(model_file, tmp_path,
                                                                    capsys):
    """A 16-bit PNG of the values v·257 is the 8-bit picture v: the labels must be equal (Pillow's
    RGB conversion used to clip it to an all-white image)."""
    grey = np.random.default_rng(0).integers(0, 256, (40, 48)).astype(np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "eight.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode == "I;16"
    say(capsys, 0, ["predict", str(model_file), str(tmp_path / "eight.png"),
                    str(tmp_path / "sixteen.png"), "--out", str(tmp_path / "out")])
    eight = np.asarray(Image.open(tmp_path / "out" / "eight_labels.png"))
    sixteen = np.asarray(Image.open(tmp_path / "out" / "sixteen_labels.png"))
    assert eight.shape == (40, 48) and len(np.unique(eight)) > 1
    np.testing.assert_array_equal(sixteen, eight)


def test_predict_refuses_a_floating_point_image(model_file, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8), np.float32), mode="F").save(tmp_path / "float.tif")
    out = say(capsys, 2, ["predict", str(model_file), str(tmp_path / "float.tif"),
                          "--out", str(tmp_path / "out")])
    assert "float.tif as an image" in out and "floating-point image" in out
    assert not (tmp_path / "out").exists()


def test_predict_on_a_folder_asks_for_its_images(model_file, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    out = say(capsys, 2, ["predict", str(model_file), str(tmp_path / "photos"),
                          "--out", str(tmp_path / "out")])
    assert "photos is a folder; give the image files in it" in out


def test_lab_student_never_replaces_the_reference(tmp_path, capsys):
    lab = tmp_path / "00_welcome.ipynb"
    lab.write_bytes((ROOT / "notebooks" / "00_welcome.ipynb").read_bytes())
    before = lab.read_bytes()
    out = say(capsys, 2, ["lab", "student", str(lab), "--out", str(tmp_path)])
    assert "would replace the reference itself" in out and lab.read_bytes() == before
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 not a notebook")
    out = say(capsys, 2, ["lab", "student", str(lab), str(tmp_path / "model.keras"),
                          "--out", str(tmp_path / "student")])
    assert "model.keras cannot be read as a notebook: unreadable notebook (not JSON)" in out
    assert not (tmp_path / "student").exists()  # nothing written when one file is bad


def test_every_row_of_the_table_names_a_test_that_exists():
    """docs/bad-inputs.md: each row's last column is ``tests/<file>.py::<test>``."""
    table = (ROOT / "docs" / "bad-inputs.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(named) >= 30
    for file, test in named:
        tree = ast.parse((ROOT / file).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert test in functions, f"docs/bad-inputs.md names {file}::{test}, which is not there"
