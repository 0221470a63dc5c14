"""End to end on a tiny shapes run: the run folder, the scores, determinism, evaluate, predict."""

import csv
import json
import re

import numpy as np
import pytest
from PIL import Image

from segcourse.cli import main
from segcourse.train import TrainConfig, train

TINY = dict(model="unet", epochs=2, image_size=32, batch_size=8, train_count=32, val_count=16,
            test_count=16, model_options={"base_filters": 4, "depth": 2})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(TrainConfig(**TINY, out_dir=str(tmp_path_factory.mktemp("runs"))), verbose=0)


def test_the_run_folder_holds_model_log_metrics_and_figures(run):
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"config.json", "model.keras", "checkpoints", "log.csv", "metrics.json",
            "learning_curves.png", "predictions.png", "confusion.png", "class_iou.png"} <= names
    rows = list(csv.DictReader((run.run_dir / "log.csv").open()))
    assert len(rows) == 2 and {"loss", "miou", "val_loss", "val_miou"} <= set(rows[0])
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(run.scores.miou)
    assert np.sum(metrics["confusion"]) == 16 * 32 * 32  # every test pixel, once
    assert json.loads((run.run_dir / "config.json").read_text())["epochs"] == 2


def test_the_same_seed_gives_the_same_run(run, tmp_path):
    again = train(TrainConfig(**TINY, out_dir=str(tmp_path)), verbose=0)
    assert again.history == run.history
    np.testing.assert_array_equal(again.scores.confusion, run.scores.confusion)


def test_evaluate_and_predict_commands(run, tmp_path, capsys):
    assert main(["evaluate", str(run.run_dir), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "mean (mIoU)" in out and f"{run.scores.miou:6.3f}" in out
    picture = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(tmp_path / "photo.png")
    assert main(["predict", str(run.run_dir), str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "out")]) == 0
    labels = Image.open(tmp_path / "out" / "photo_labels.png")
    assert labels.mode == "P" and labels.size == (50, 40)
    assert np.asarray(labels).max() < 6


def test_predict_refuses_what_is_not_an_image(run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["predict", str(run.run_dir), str(tmp_path / "notes.txt"),
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert re.search("cannot read .*notes.txt as an image", err) and "Traceback" not in err


# Issue 11 ------------------------------------------------------------------------------------

def save_picture(path, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = (np.random.default_rng(height).random((height, width, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(path)


def test_predict_keeps_images_of_the_same_name_apart(run, tmp_path, capsys):
    save_picture(tmp_path / "a" / "photo.png", 40, 50)
    save_picture(tmp_path / "b" / "photo.jpg", 30, 20)
    save_picture(tmp_path / "b" / "photo.png", 10, 12)
    out = tmp_path / "pred"
    assert main(["predict", str(run.run_dir), str(tmp_path / "a" / "photo.png"),
                 str(tmp_path / "b" / "photo.jpg"), str(tmp_path / "b" / "photo.png"),
                 "--out", str(out)]) == 0
    assert Image.open(out / "a" / "photo_labels.png").size == (50, 40)
    assert Image.open(out / "b" / "photo.jpg_labels.png").size == (20, 30)
    assert Image.open(out / "b" / "photo.png_labels.png").size == (12, 10)
    assert len(list(out.rglob("*.png"))) == 6  # labels and overlay for each, none replaced
    assert capsys.readouterr().out.count("wrote ") == 6


def test_predict_never_overwrites_a_file_silently(run, tmp_path, capsys):
    save_picture(tmp_path / "photo.png", 40, 50)
    out = tmp_path / "pred"
    command = ["predict", str(run.run_dir), str(tmp_path / "photo.png"), "--out", str(out)]
    assert main(command) == 0
    (out / "photo_labels.png").write_bytes(b"an earlier result")
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{out / 'photo_labels.png'} already exists (and 1 more of the results)" in err
    assert "--overwrite" in err
    assert (out / "photo_labels.png").read_bytes() == b"an earlier result"
    assert main([*command, "--overwrite"]) == 0
    assert f"overwrote {out / 'photo_labels.png'}" in capsys.readouterr().out
    assert Image.open(out / "photo_labels.png").size == (50, 40)


def test_predict_refuses_the_same_image_twice(run, tmp_path, capsys):
    save_picture(tmp_path / "photo.png", 40, 50)
    image = str(tmp_path / "photo.png")
    assert main(["predict", str(run.run_dir), image, str(tmp_path / "." / "photo.png"),
                 "--out", str(tmp_path / "pred")]) == 2
    assert "is given twice" in capsys.readouterr().err
    assert not (tmp_path / "pred").exists()


@pytest.mark.parametrize("change, said", [
    ({"model": "unet4"}, "unknown model 'unet4'"),
    ({"model_options": {"kernel": 3}}, "unet has no option kernel"),
    ({"model_options": {"skips": "false"}}, "option skips takes true or false"),
    ({"image_size": 34}, "input height 34 is not a multiple of its total stride 4"),
    ({"train_count": 0}, "train_count must be a whole number of at least 1; got 0"),
    ({"epochs": 0}, "epochs must be a whole number of at least 1; got 0"),
])
def test_a_failed_start_leaves_no_run_folder(change, said, tmp_path):
    with pytest.raises(ValueError, match=re.escape(said)):
        train(TrainConfig(**{**TINY, **change}, out_dir=str(tmp_path / "runs")), verbose=0)
    assert not (tmp_path / "runs").exists()


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from segcourse.train import TrainConfig, distribution_strategy, train
print("replicas", distribution_strategy("mirrored").num_replicas_in_sync)
config = TrainConfig(**{tiny}, distribute="mirrored", out_dir=sys.argv[1])
print("miou", train(config, verbose=0).scores.miou)
"""


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    """What a multi-GPU machine does, on this CPU split into two logical devices."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MIRRORED.format(tiny=TINY), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replicas 2" in result.stdout
    miou = float(result.stdout.split("miou")[1])
    assert 0 <= miou <= 1
