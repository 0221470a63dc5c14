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


def test_predict_reads_a_phone_photo_as_a_viewer_shows_it(model_file, tmp_path, capsys):
    """A picture stored turned 90° with an EXIF orientation (6: show it turned clockwise) is
    the upright picture: its labels are the upright picture's, in its shape."""
    upright = np.random.default_rng(1).integers(0, 256, (40, 48, 3)).astype(np.uint8)
    Image.fromarray(upright).save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.rot90(upright, 1)  # turned counter-clockwise; a viewer turns it back
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "phone.png", exif=exif)
    say(capsys, 0, ["predict", str(model_file), str(tmp_path / "upright.png"),
                    str(tmp_path / "phone.png"), "--out", str(tmp_path / "out")])
    labels = {name: np.asarray(Image.open(tmp_path / "out" / f"{name}_labels.png"))
              for name in ("upright", "phone")}
    assert labels["phone"].shape == (40, 48) and len(np.unique(labels["upright"])) > 1
    np.testing.assert_array_equal(labels["phone"], labels["upright"])


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


def _flat_folder(root, count=6, mask_suffix=".png"):
    """``count`` 16×16 image/mask pairs (two classes) in ``root/images`` and ``root/masks``."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(root / "images" / f"p{i}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:12, 4:12] = 1
        Image.fromarray(mask).save(root / "masks" / f"p{i}{mask_suffix}")
    return root


def test_masks_as_jpeg_are_named_and_upper_case_png_masks_are_read(tmp_path):
    from segcourse.data.folders import DatasetProblems, open_folders

    with pytest.raises(DatasetProblems) as refused:  # it used to say "only 0 pairs"
        open_folders(_flat_folder(tmp_path / "jpeg", mask_suffix=".jpg"), progress=False)
    assert "masks/p0.jpg is not a PNG: masks must be PNG" in str(refused.value)
    assert len(refused.value.problems) == 6
    data = open_folders(_flat_folder(tmp_path / "upper", mask_suffix=".PNG"), progress=False)
    assert len(data.train.images) + len(data.val.images) + len(data.test.images) == 6


def test_macos_hidden_files_in_the_folders_are_skipped(tmp_path):
    from segcourse.data.folders import open_folders

    root = _flat_folder(tmp_path / "copied")
    for folder in ("images", "masks"):  # what a copy from macOS leaves beside each file
        (root / folder / "._p0.png").write_bytes(b"\x00\x05\x16\x07Mac OS X")
        (root / folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    data = open_folders(root, progress=False)
    assert not any(name.startswith(".") for files in data.split_files.values()
                   for name in map(lambda f: Path(f).name, files))


def test_classes_txt_with_a_bom_or_not_in_utf_8(tmp_path):
    from segcourse.data.folders import open_folders

    root = _flat_folder(tmp_path / "bom")
    (root / "classes.txt").write_bytes("\ufeffbackground: 0\r\nobject: 1\r\n".encode())
    assert open_folders(root, progress=False).class_names == ("background", "object")
    (root / "classes.txt").write_bytes("Hintergrund\nK\xe4fer\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"classes.txt is not UTF-8 text .*save it as UTF-8"):
        open_folders(root, progress=False)


def test_a_folder_dataset_needs_a_path_and_expands_the_home_folder(tmp_path, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    runs = tmp_path / "runs"
    out = say(capsys, 2, ["train", "plain", "--dataset", "folder:", "--epochs", "1",
                          "--out", str(runs)])
    assert "folder: needs the dataset's folder after the colon" in out
    out = say(capsys, 2, ["train", "plain", "--dataset", "folder:~/pictures", "--epochs", "1",
                          "--out", str(runs)])
    assert f"dataset folder {tmp_path / 'pictures'} does not exist" in out
    assert not runs.exists()


def test_train_count_is_refused_for_a_dataset_other_than_shapes(tmp_path, capsys):
    out = say(capsys, 2, ["train", "plain", "--dataset", "folder:data", "--train-count", "8",
                          "--out", str(tmp_path / "runs")])
    assert "--train-count 8 sets how many pictures the shapes dataset draws" in out
    assert not (tmp_path / "runs").exists()


def test_an_image_size_beyond_the_machine_s_memory_is_refused(tmp_path, capsys):
    out = say(capsys, 2, ["train", "plain", "--image-size", "1000000", "--batch-size", "4",
                          "--out", str(tmp_path / "runs")])
    assert "image_size 1000000 with batch_size 4: one batch of pictures alone takes" in out
    assert "GB of memory; choose a smaller image_size" in out
    assert not (tmp_path / "runs").exists()


def test_running_out_of_memory_while_training_is_one_paragraph(tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    import segcourse.train

    def out_of_memory(config):
        raise tf.errors.ResourceExhaustedError(
            None, None, "Graph execution error:\nmap: OOM when allocating tensor with "
                        "shape[32,4096,4096,3] and type float\nHint: ...")

    monkeypatch.setattr(segcourse.train, "train", out_of_memory)
    out = say(capsys, 2, ["train", "plain", "--out", str(tmp_path / "runs")])
    assert "training ran out of memory (OOM when allocating tensor with shape[32,4096" in out
    assert "choose a smaller --batch-size or --image-size" in out


@pytest.mark.parametrize("content, says", [
    ('{"model": "plain",', "config.json is not readable JSON"),
    ('[1, 2]', "config.json holds a JSON list, not the object of training settings"),
    ('{"model": "plain", "colour": "red"}', "unknown key 'colour'"),
    ('{"model": "plain", "dataset": 123, "image_size": "32"}',
     "dataset is 123, not a string; image_size is '32', not a whole number"),
])
def test_evaluate_names_a_run_whose_config_json_was_changed(tmp_path, capsys, content, says):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    out = say(capsys, 2, ["evaluate", str(run)])
    assert says in out and str(run / "config.json") in out


def test_evaluate_checks_the_json_path_before_evaluating(model_file, tmp_path, capsys):
    out = say(capsys, 2, ["evaluate", str(model_file), "--json", str(tmp_path / "no" / "s.json")])
    assert f"its folder {tmp_path / 'no'} does not exist" in out and "Nothing was evaluated" in out
    out = say(capsys, 2, ["evaluate", str(model_file), "--json", str(tmp_path)])
    assert f"{tmp_path} is a folder; give a file name" in out


def test_evaluate_never_replaces_a_json_file_unasked(model_file, tmp_path, capsys):
    scores = tmp_path / "scores.json"
    scores.write_text("an earlier result")
    out = say(capsys, 2, ["evaluate", str(model_file), "--json", str(scores)])
    assert "already exists" in out and "--overwrite" in out and "Nothing was evaluated" in out
    assert scores.read_text() == "an earlier result"


def test_bench_refuses_an_unknown_model_before_timing_anything(tmp_path, capsys, monkeypatch):
    from segcourse import bench

    monkeypatch.setattr(bench, "matmul_gflops", lambda: pytest.fail("timed before checking"))
    out = say(capsys, 2, ["bench", "--models", "unet", "nosuch", "--out",
                          str(tmp_path / "report.md")])
    assert "nosuch" in out and "unet" in out


def test_every_row_of_the_table_names_a_test_that_exists():
    """docs/bad-inputs.md: each row's last column is ``tests/<file>.py::<test>``."""
    table = (ROOT / "docs" / "bad-inputs.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", table)
    assert len(named) >= 30
    for file, test in named:
        tree = ast.parse((ROOT / file).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert test in functions, f"docs/bad-inputs.md names {file}::{test}, which is not there"
