"""End to end on a tiny shapes run: the run folder, the scores, determinism, evaluate, predict."""

import csv
import json

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


def test_predict_refuses_what_is_not_an_image(run, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="cannot read .*notes.txt as an image"):
        main(["predict", str(run.run_dir), str(tmp_path / "notes.txt"), "--out", str(tmp_path)])


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
