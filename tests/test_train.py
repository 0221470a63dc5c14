"""End to end on a tiny shapes run: the run folder, the scores, determinism, evaluate, predict."""

import csv
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from segcourse.cli import main
from segcourse.data.sources import open_dataset
from segcourse.train import TrainConfig, reset_optimizer, seed_everything, train

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
    assert [row["epoch"] for row in rows] == ["1", "2"]  # as "Epoch 1/2" and status.json count
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert metrics["miou"] == pytest.approx(run.scores.miou)
    assert np.sum(metrics["confusion"]) == 16 * 32 * 32  # every test pixel, once
    assert metrics["scored_at"] == "scored at 32 × 32, the size its pictures are made at"
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


def test_a_folder_that_cannot_hold_runs_is_refused_before_the_data_is_opened(tmp_path,
                                                                               monkeypatch):
    # `train --out /proc/x` used to fail with a bare OS error once data and model were ready
    import segcourse.data.sources

    def never(config):
        raise AssertionError("the data was opened")

    monkeypatch.setattr(segcourse.data.sources, "open_dataset", never)
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(ValueError, match=r"cannot make a run folder in .*notes.txt/runs \(.*"
                                         r"notes.txt is a file, not a folder\): choose a folder"):
        train(TrainConfig(**TINY, out_dir=str(tmp_path / "notes.txt" / "runs")), verbose=0)
    if Path("/proc/self").exists():
        with pytest.raises(ValueError, match="cannot make a run folder in /proc/x"):
            train(TrainConfig(**TINY, out_dir="/proc/x"), verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no probe left


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


@pytest.mark.slow
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


# Issue 11: interrupted runs, resume, NaN checkpoints, the data a run records ------------------

FOUR = {**TINY, "epochs": 4}


class Recorder:
    """A callback (built lazily: keras is imported by the tests that use it) that keeps each
    epoch's weights and can stop training at a given (epoch, batch) like a Ctrl-C would."""

    def __new__(cls, stop=None, nan_epochs=()):
        import keras

        class _Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.weights, self.epoch = {}, None

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if stop == (self.epoch, batch):
                    raise KeyboardInterrupt

            def on_epoch_end(self, epoch, logs=None):
                self.weights[epoch + 1] = [np.array(v) for v in self.model.weights]
                if epoch + 1 in nan_epochs:
                    logs["val_miou"] = float("nan")  # what the run's checkpoint then sees

        return _Recorder()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-epoch run, with its weights after every epoch."""
    recorder = Recorder()
    result = train(TrainConfig(**FOUR, out_dir=str(tmp_path_factory.mktemp("reference"))),
                   verbose=0, callbacks=[recorder])
    return result, recorder.weights


def only_run(folder):
    (run_dir,) = folder.iterdir()
    return run_dir


def assert_same_run(run_dir, reference_dir):
    """log.csv, model.keras and the test scores exactly equal: with op determinism on one
    machine, the same state and the same batches give bit-identical floats."""
    import keras

    assert (run_dir / "log.csv").read_text() == (reference_dir / "log.csv").read_text()
    resumed = keras.saving.load_model(run_dir / "model.keras").get_weights()
    uninterrupted = keras.saving.load_model(reference_dir / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(resumed, uninterrupted, strict=True))
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (run_dir,
                                                                          reference_dir))
    assert ours["confusion"] == theirs["confusion"] and ours["miou"] == theirs["miou"]
    assert ours["best_epoch"] == theirs["best_epoch"]


def test_an_interrupted_run_says_so_and_resumes_to_the_uninterrupted_result(
        reference, tmp_path, capsys):
    from segcourse.train import resume

    result, weights = reference
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the middle of the third epoch
        train(TrainConfig(**FOUR, out_dir=str(tmp_path)), verbose=0,
              callbacks=[Recorder(stop=(2, 1))])
    run_dir = only_run(tmp_path)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epochs_done"] == 2
    assert "KeyboardInterrupt" in status["reason"]
    assert f"--resume {run_dir}" in capsys.readouterr().err
    assert not (run_dir / "model.keras").exists() and (run_dir / "checkpoints" /
                                                        "state-epoch-2").is_dir()

    assert main(["evaluate", str(run_dir)]) == 0  # the best checkpoint so far, with a note
    out = capsys.readouterr().out
    assert "is not a finished run (interrupted after epoch 2 of 4" in out
    assert f"checkpoints/best.keras, from epoch {status['best_epoch']}" in out
    assert "mean (mIoU)" in out

    recorder = Recorder()
    resumed = resume(run_dir, verbose=0, callbacks=[recorder])
    assert sorted(recorder.weights) == [3, 4]  # epochs 1-2 were not trained again
    for epoch in (3, 4):
        assert all(np.array_equal(a, b) for a, b in zip(recorder.weights[epoch],
                                                        weights[epoch], strict=True))
    assert resumed.history == result.history
    assert_same_run(run_dir, result.run_dir)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["resumed"][0]["after_epoch"] == 2
    assert not list((run_dir / "checkpoints").glob("state-epoch-*"))

    assert main(["train", "--resume", str(run_dir)]) == 2  # finished: nothing to resume
    assert "cannot resume" in (err := capsys.readouterr().err) and "it finished" in err


KILLED = """
import os, signal, sys
import keras
from segcourse.train import TrainConfig, train

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (2, 1):
            os.kill(os.getpid(), signal.SIGKILL)

train(TrainConfig(**{four}, out_dir=sys.argv[1]), verbose=0, callbacks=[Kill()])
"""


@pytest.mark.slow
def test_a_killed_run_is_recognised_and_resumed_by_the_command(reference, tmp_path, capsys):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", KILLED.format(four=FOUR), str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == -9, result.stderr[-2000:]
    run_dir = only_run(tmp_path)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "running" and status["epochs_done"] == 2  # nobody said otherwise

    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "still says running, after epoch 2 of 4: its process was killed" in out

    # Resuming takes the run's own configuration: a flag that contradicts it is refused.
    assert main(["train", "--resume", str(run_dir), "--epochs", "6", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 6 (the run has 4) contradicts it" in err and "--seed" not in err
    assert main(["train", "fcn8s", "--resume", str(run_dir)]) == 2
    assert "the model fcn8s (the run has unet)" in capsys.readouterr().err

    assert main(["train", "--resume", str(run_dir), "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {run_dir}" in out
    # The estimate, for the 2 epochs left, is printed before training (its probe of the
    # machine leaves the run's result unchanged: the same run as uninterrupted, below).
    assert re.search(r"estimate: about \d+ (s|min) for 2 epoch\(s\) \(\d+\.\d TFLOP", out), out
    assert out.index("estimate: about") < out.index("Epoch 3/4")
    # After the session's first epoch, its pace for the one left.
    assert (out.index("Epoch 3/4") < out.index("pace: epoch 3 took") < out.index("Epoch 4/4")
            and "the 1 epoch(s) left" in out), out
    assert_same_run(run_dir, reference[0].run_dir)


def test_resume_refuses_what_is_not_an_unfinished_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a run folder (it is empty)" in err and "config.json" in err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "it holds notes.txt but no config.json" in err and "model.keras" in err


def test_the_random_state_of_dropout_is_saved_with_the_training_state(tmp_path):
    """A weights file leaves out the seed generators of dropout layers; the state does not."""
    import keras
    import tensorflow as tf

    from segcourse.checkpoints import _random_variables, load_state, save_state

    def model():
        keras.utils.set_random_seed(1)
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5),
                                keras.layers.Dense(2)])
        net.compile("adam", "mse")
        return net

    first = model()
    first.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=2, verbose=0)
    save_state(first, tmp_path / "state")
    second = model()
    load_state(second, tmp_path / "state", tf.distribute.get_strategy())
    states = [[np.array(v) for v in _random_variables(net)] for net in (first, second)]
    assert len(states[0]) == 1 and np.array_equal(states[0][0], states[1][0])
    assert int(second.optimizer.iterations) == 2  # and the optimizer's step count, too
    assert np.array_equal(first.predict(np.ones((1, 4)), verbose=0),
                          second.predict(np.ones((1, 4)), verbose=0))


def test_a_nan_first_epoch_does_not_block_the_best_checkpoint(tmp_path):
    # Keras' ModelCheckpoint keeps a NaN first value as its best, and nothing beats a NaN.
    import keras

    from segcourse.checkpoints import BestCheckpoint
    from segcourse.runs import RunStatus

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint = BestCheckpoint(tmp_path / "best.keras", "val_miou", RunStatus(tmp_path, {}))
    checkpoint.set_model(model)
    for epoch, value in enumerate([float("nan"), 0.5, 0.4, float("nan"), 0.6]):
        checkpoint.on_epoch_end(epoch, {"val_miou": value})
        assert checkpoint.best_epoch == [None, 2, 2, 2, 5][epoch]
        if epoch == 0:  # a NaN is no best: nothing saved, nothing recorded
            assert not (tmp_path / "best.keras").exists()
            assert not (tmp_path / "status.json").exists()
        else:
            saved = json.loads((tmp_path / "status.json").read_text())
            assert saved["best_epoch"] == checkpoint.best_epoch
    assert checkpoint.best == 0.6 and (tmp_path / "best.keras").is_file()


@pytest.mark.slow
def test_a_run_whose_val_miou_is_always_nan_still_ends_with_a_model(tmp_path, capsys):
    result = train(TrainConfig(**{**TINY, "epochs": 2}, out_dir=str(tmp_path)), verbose=0,
                   callbacks=[Recorder(nan_epochs=(1, 2))])
    assert not (result.run_dir / "checkpoints" / "best.keras").exists()
    assert (result.run_dir / "model.keras").is_file()
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["best_epoch"] is None and metrics["model_epoch"] == 2
    (note,) = metrics["notes"]
    assert "val_miou was NaN in every epoch (2)" in note and "last epoch's model" in note
    assert f"note: {note}" in capsys.readouterr().out
    assert main(["evaluate", str(result.run_dir)]) == 0  # a finished run: its model.keras


def save_folder_dataset(root, count=6, size=32, classes=3):
    """train/ and val/ (no test/) of random pictures whose masks hold 0..classes-1."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(count):
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            picture = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            mask = np.zeros((size, size), np.uint8)
            for value in range(1, classes):
                top, left = rng.integers(0, size // 2, 2)
                mask[top:top + size // 3, left:left + size // 3] = value
            Image.fromarray(picture).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}{i}.png")


@pytest.mark.slow
def test_a_run_records_its_data_and_says_when_test_is_the_val_split(tmp_path, capsys):
    root = tmp_path / "data"
    save_folder_dataset(root)
    runs = tmp_path / "runs"
    assert main(["train", "unet", "--dataset", f"folder:{root}", "--profile", "cpu",
                 "--epochs", "1", "--image-size", "32", "--batch-size", "4", "--option",
                 "base_filters=4", "--option", "depth=2", "--out", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "has no test split" in out  # said at the start ...
    assert "\nval (no test split) split, best checkpoint" in out  # ... and in the summary
    assert "scored at each picture's own size:\n" in out
    run_dir = only_run(runs)
    data = json.loads((run_dir / "data.json").read_text())
    assert data["test_split"] == "val (no test split)"
    assert data["classes"] == ["class 0", "class 1", "class 2"]
    assert any("has no test split" in note for note in data["notes"])
    assert data["split_files"]["train"] == [f"train/images/train{i}.png" for i in range(6)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "val (no test split)"
    assert metrics["scored_at"] == "scored at each picture's own size"
    assert main(["evaluate", str(run_dir)]) == 0
    assert "val (no test split) split of folder:" in capsys.readouterr().out


def test_evaluate_refuses_a_model_whose_classes_are_not_the_datasets(run, tmp_path, capsys):
    root = tmp_path / "data"
    save_folder_dataset(root, count=2)
    assert main(["evaluate", str(run.run_dir), "--dataset", f"folder:{root}"]) == 2
    err = capsys.readouterr().err
    assert (f"the model outputs 6 classes but the dataset folder:{root} has 3 (class 0, class 1, "
            "class 2)") in err
    assert "Traceback" not in err


def test_evaluate_on_a_dataset_that_names_the_classes_otherwise_says_so(run, tmp_path, capsys):
    """Same count, other names: scored (a folder without classes.txt names its classes by
    number), with a note that the classes are paired by number."""
    root = tmp_path / "data"
    save_folder_dataset(root, count=2, classes=6)
    assert main(["evaluate", str(run.run_dir), "--dataset", f"folder:{root}"]) == 0
    out = capsys.readouterr().out
    assert ("note: the run trained on the classes background, disc, square, triangle, ring, "
            "cross; folder:") in out and "The scores pair them by number" in out
    assert main(["evaluate", str(run.run_dir)]) == 0
    assert "pair them by number" not in capsys.readouterr().out


# The training recipe: compile_model, shared by train() and the labs ----------------------------

def test_compile_model_weighs_pspnets_auxiliary_loss_by_its_declared_0_4(rng):
    from segcourse import models
    from segcourse.losses import MaskedCrossEntropy
    from segcourse.train import compile_model

    model = models.build("pspnet", 3, (64, 64, 3), model_size="small", aux_head=True)
    assert compile_model(model, TrainConfig(model="pspnet"), 3, 10) == "val_score_miou"
    images = rng.random((2, 64, 64, 3)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 64, 64)).astype(np.int32)
    logs = model.evaluate(images, [masks, masks], return_dict=True, verbose=0)
    # each output's own loss, computed here: Keras 3.6 logs aux_score_loss already weighed
    loss = MaskedCrossEntropy()
    score, aux = model(images, training=False)
    expected = float(loss(masks, score)) + 0.4 * float(loss(masks, aux))
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_compile_model_gives_a_single_output_model_one_unweighted_loss():
    from segcourse import models
    from segcourse.train import compile_model

    model = models.build("unet", 6, (32, 32, 3), **TINY["model_options"])
    assert compile_model(model, TrainConfig(**TINY), 6, 4) == "val_miou"
    assert model.get_compile_config()["loss_weights"] is None
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)  # the cpu profile's


def test_a_model_with_outputs_its_registration_does_not_weigh_is_refused(tmp_path, monkeypatch):
    """Not given PSPNet's weights: refused, before any run folder."""
    import keras

    from segcourse.models import registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # gone after the test

    @registry.register_model("two_heads")
    def two_heads(num_classes, input_shape=(None, None, 3), filters=4):
        """Two heads, no recipe."""
        inputs = keras.Input(input_shape)
        features = keras.layers.Conv2D(filters, 3, padding="same")(inputs)
        return keras.Model(inputs, [keras.layers.Conv2D(num_classes, 1)(features),
                                    keras.layers.Conv2D(num_classes, 1)(features)])

    config = TrainConfig(**{**TINY, "model": "two_heads", "model_options": {}},
                         out_dir=str(tmp_path / "runs"))
    with pytest.raises(ValueError, match="two_heads has 2 outputs, but its registration "
                                         "declares no auxiliary loss weights"):
        train(config, verbose=0)
    assert not (tmp_path / "runs").exists()


def test_a_config_written_before_the_model_size_rename_still_reads(tmp_path):
    from segcourse import runs

    (tmp_path / "config.json").write_text(json.dumps({"model": "unet", "preset": "cpu"}))
    assert runs.read_config(tmp_path) == {"model": "unet", "model_size": "small"}
    (tmp_path / "config.json").write_text(json.dumps({"model": "unet", "preset": "full"}))
    assert TrainConfig(**runs.read_config(tmp_path)).model_size == "paper"


# reset_optimizer: one optimizer shared by several runs ------------------------------------------


def _step_after(make_optimizer, reset, trained=True):
    """A small network's weights after one step from fixed weights and data: with an optimizer
    that trained 3 steps on other data (``trained``) and was then reset (``reset``), or with a
    new one (``trained=False``). Returns (weights, the optimizer)."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(2)])
    start = model.get_weights()
    rng = np.random.default_rng(0)
    optimizer = make_optimizer()
    loss = keras.losses.MeanSquaredError()
    model.compile(optimizer=optimizer, loss=loss)
    if trained:
        for _ in range(3):
            model.train_on_batch(rng.normal(size=(8, 4)), rng.normal(size=(8, 2)))
        if reset:
            reset_optimizer(optimizer)
        model.set_weights(start)
    x, y = np.random.default_rng(1).normal(size=(8, 4)), np.random.default_rng(2).normal(
        size=(8, 2))
    model.train_on_batch(x, y)
    return model.get_weights(), optimizer


@pytest.mark.parametrize("make_optimizer", [
    lambda: keras.optimizers.Adam(0.01),
    lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: keras.optimizers.Adagrad(0.1),  # its accumulators start at 0.1, not 0
    lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.01, 10, alpha=0.05)),
], ids=["adam", "sgd-momentum", "adagrad", "adam-schedule"])
def test_a_reset_optimizer_steps_as_a_new_one_and_keeps_its_learning_rate(make_optimizer):
    expected, _ = _step_after(make_optimizer, reset=False, trained=False)
    got, optimizer = _step_after(make_optimizer, reset=True)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    stale, _ = _step_after(make_optimizer, reset=False)  # the test can tell: without the reset
    assert not all(np.allclose(a, b, rtol=1e-6, atol=1e-7)
                   for a, b in zip(stale, expected, strict=True))
    assert int(optimizer.iterations) == 1  # the one step after the reset
    rate = make_optimizer().get_config()["learning_rate"]
    if isinstance(rate, dict):  # a schedule, read at the step count: its value at step 1
        rate = float(keras.optimizers.schedules.deserialize(rate)(1))
    assert float(optimizer.learning_rate) == pytest.approx(rate)


def test_reset_optimizer_keeps_a_changed_learning_rate_and_an_unbuilt_optimizer_is_fine():
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.iterations.assign(5)  # not built yet: only the step count and the rate exist
    optimizer.learning_rate = 0.002
    reset_optimizer(optimizer)
    assert int(optimizer.iterations) == 0
    assert float(optimizer.learning_rate) == pytest.approx(0.002)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    scheduled = keras.optimizers.SGD(schedule)
    scheduled.iterations.assign(10)
    reset_optimizer(scheduled)  # the schedule kept, read at step 0 again
    assert float(scheduled.learning_rate) == pytest.approx(0.1)
    assert scheduled.get_config()["learning_rate"] == keras.optimizers.schedules.serialize(
        schedule)


def test_reset_optimizer_refuses_what_it_cannot_reset():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(TypeError, match="pass model.optimizer"):
        reset_optimizer(model)
    with pytest.raises(TypeError, match="takes a Keras 3 optimizer"):
        reset_optimizer("adam")
    with pytest.raises(ValueError, match="build a new LossScaleOptimizer"):
        reset_optimizer(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()))

    class Stubborn(keras.optimizers.SGD):  # an argument its get_config does not give back
        def __init__(self, strength, **kwargs):
            super().__init__(**kwargs)
            self.strength = strength

    with pytest.raises(ValueError, match="cannot make a new Stubborn from its get_config"):
        reset_optimizer(Stubborn(2.0, learning_rate=0.1))


def test_seed_everything_repeats_every_random_draw_and_makes_ops_deterministic():
    import random

    import tensorflow as tf
    from tensorflow.python.framework.config import is_op_determinism_enabled  # no public getter

    def draws():  # not Keras' unseeded draws: under Keras 3.6 (the oldest pair) they do not repeat
        return random.random(), np.random.rand(), float(tf.random.uniform(()))

    seed_everything(7)
    first = draws()
    seed_everything(7)
    assert draws() == first
    seed_everything(8)
    assert draws() != first
    assert is_op_determinism_enabled()


def _one_by_one(channels, bias, activation=None):
    """A 1×1 convolution on 2×2×3 pictures: weights 0, the given bias (so a fixed output)."""
    inputs = keras.Input((2, 2, 3))
    layer = keras.layers.Conv2D(channels, 1, activation=activation)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([np.zeros((1, 1, 3, channels), "float32"), np.asarray(bias, "float32")])
    return model


def test_evaluate_refuses_a_split_that_now_holds_pictures_the_run_trained_on(
        run, tmp_path, capsys):
    """A flat folder is split by a hash of the names and the picture count: after pictures are
    added, some of the run's training pictures may sit in the test split. data.json says which
    pictures each split held; evaluate compares."""
    import shutil

    from segcourse.runs import check_unseen

    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    for i in range(20):
        for folder in ("images", "masks"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(
            root / "images" / f"p{i:02d}.png")
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16) % 6).save(
            root / "masks" / f"p{i:02d}.png")
    dataset = f"folder:{root}"
    now = open_dataset(TrainConfig(dataset=dataset, image_size=16).resolved()).split_files
    run_dir = tmp_path / "run"
    shutil.copytree(run.run_dir, run_dir)
    record = json.loads((run_dir / "data.json").read_text())
    # As the run saw the folder: two of today's test pictures were training pictures and one
    # of today's val pictures was a val picture (chose the checkpoint), the rest elsewhere.
    recorded = {"train": [*now["test"][:2], "images/gone.png"], "val": list(now["val"][:1]),
                "test": ["images/old.png"]}
    record.update(dataset=dataset, classes=[f"class {k}" for k in range(6)],
                  split_files=recorded)
    (run_dir / "data.json").write_text(json.dumps(record))
    assert main(["evaluate", str(run_dir), "--dataset", dataset]) == 2
    err = capsys.readouterr().err
    assert (f"the test split of {dataset} now holds pictures the run did not hold out: 2 from "
            f"its train split (e.g. {now['test'][0]}, {now['test'][1]})") in err
    assert "Restore the folder as it was" in err
    # Scoring val: the run's val pictures are what val held out from training, so only the
    # training pictures count against it, and today's val holds none of them.
    check_unseen(run_dir, dataset, now, "val")
    with pytest.raises(ValueError, match="now holds pictures the run did not hold out: 1 from "
                                         "its val split"):
        check_unseen(run_dir, dataset, {**now, "test": now["val"]}, "test")
    check_unseen(run_dir, "shapes", now, "test")  # another dataset: nothing to compare
    # A run whose folder had no test split was tested on its val split: that is its note's
    # business (an optimistic estimate), not a leak.
    record["split_files"] = {**recorded, "test": recorded["val"]}
    (run_dir / "data.json").write_text(json.dumps(record))
    check_unseen(run_dir, dataset, {**now, "test": now["val"]}, "test")


def test_evaluate_refuses_one_score_per_pixel_and_channels_that_are_not_the_classes():
    """A sigmoid's single channel has argmax 0 everywhere: scored, a perfect binary model got
    mIoU 0.25. Two channels scored as three classes gave a number too."""
    from segcourse.side_by_side import score_side_by_side
    from segcourse.train import evaluate

    pictures, masks = np.zeros((1, 2, 2, 3), "float32"), np.ones((1, 2, 2), int)
    sigmoid = _one_by_one(1, [5.0], "sigmoid")  # p = 0.99 everywhere: class 1, perfectly
    with pytest.raises(ValueError, match="one score per pixel"):
        evaluate(sigmoid, [(pictures, masks)], 2, progress=False)
    with pytest.raises(ValueError, match="one score per pixel"):
        score_side_by_side({"sigmoid": sigmoid}, [(pictures, masks)], 2)
    with pytest.raises(ValueError, match="num_classes is 3"):
        evaluate(_one_by_one(2, [0.0, 1.0]), [(pictures, masks)], 3, progress=False)
    assert evaluate(_one_by_one(2, [0.0, 1.0]), [(pictures, masks)], 2,
                    progress=False).miou == 1.0


def test_labels_above_255_are_not_wrapped():
    from segcourse.train import evaluate, predict_labels

    bias = np.zeros(300)
    bias[256] = 1.0
    model = _one_by_one(300, bias)
    pictures = np.zeros((1, 2, 2, 3), "float32")
    assert predict_labels(model, pictures).tolist() == [[[256, 256], [256, 256]]]
    # 300 classes include 255, the default ignore label: another one, outside them
    assert evaluate(model, [(pictures, np.full((1, 2, 2), 256))], 300, ignore_index=300,
                    progress=False).pixel_accuracy == 1.0
    with pytest.raises(ValueError, match="ignore_index 255 is one of the 300 classes"):
        evaluate(model, [(pictures, np.full((1, 2, 2), 256))], 300, progress=False)
    assert predict_labels(_one_by_one(2, [0.0, 1.0]), pictures).dtype == np.uint8
