"""The shipped `shapes`-pretrained encoder: its file, its loader, the script that writes it."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from segcourse.models.backbones import (
    SHAPES_ENCODER,
    SHAPES_ENCODER_FILE,
    backbone,
    shapes_encoder,
    shapes_encoder_weights,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "data_scripts" / "pretrain_shapes_encoder.py"


def stored_arrays(path):
    # every array in the file, read with h5py (not through Keras)
    arrays = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: arrays.append(item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_every_weight_from(model, path):
    """Each of the model's arrays equals one array of the file, and every array of the file is
    used once: no partial load, nothing left over."""
    left = stored_arrays(path)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        match = next((i for i, a in enumerate(left)
                      if a.shape == value.shape and np.array_equal(a, value)), None)
        assert match is not None, f"{weight.path} equals no array of {path}"
        left.pop(match)
    assert left == [], f"{len(left)} arrays of {path} were not loaded"


def test_the_shipped_file_loads_into_the_encoder_with_every_weight_matched():
    path = shapes_encoder_weights()
    assert Path(path).name == SHAPES_ENCODER_FILE
    assert os.path.getsize(path) <= 200_000
    keras.utils.set_random_seed(0)
    encoder = shapes_encoder()
    assert_every_weight_from(encoder, path)
    # the same as asking backbone() for it by name, width and path
    twin = backbone(SHAPES_ENCODER["name"], (32, 32, 3), width=SHAPES_ENCODER["width"],
                    weights=path)
    for ours, theirs in zip(encoder.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    random = shapes_encoder(pretrained=False)
    assert not np.array_equal(random.get_layer("block1_conv1").get_weights()[0],
                              encoder.get_layer("block1_conv1").get_weights()[0])


def test_a_file_of_another_width_or_backbone_is_refused(tmp_path):
    path = tmp_path / "wider.weights.h5"
    backbone("vgg16", width=0.0625).save_weights(path)
    with pytest.raises(ValueError, match="does not fit this vgg16 backbone"):
        backbone("vgg16", width=SHAPES_ENCODER["width"], weights=str(path))
    with pytest.raises(ValueError, match="does not fit this resnet50 backbone"):
        backbone("resnet50", width=0.0625, weights=shapes_encoder_weights())
    with pytest.raises(ValueError, match="need width=1.0"):
        backbone("vgg16", width=SHAPES_ENCODER["width"], weights="imagenet")


@pytest.mark.slow
def test_the_path_function_works_from_an_installed_wheel(tmp_path):
    source, wheels, site = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    # a copy of what the wheel is built from, so that the build leaves the checkout untouched
    shutil.copytree(ROOT / "segcourse", source / "segcourse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("segcourse-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert f"segcourse/models/weights/{SHAPES_ENCODER_FILE}" in archive.namelist()
        archive.extractall(site)  # a wheel installs by unpacking into site-packages
    found = subprocess.run(
        [sys.executable, "-c", "from segcourse.models.backbones import shapes_encoder_weights;"
         "print(shapes_encoder_weights())"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, check=True,
        capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert Path(found) == site / "segcourse" / "models" / "weights" / SHAPES_ENCODER_FILE
    assert Path(found).read_bytes() == Path(shapes_encoder_weights()).read_bytes()


def test_the_script_writes_a_loadable_file_end_to_end(tmp_path):
    out = tmp_path / "tiny.weights.h5"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--pictures", "8",
         "--val-pictures", "4", "--epochs", "1", "--batch-size", "8"],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "validation mIoU" in run.stdout and f"wrote {out}" in run.stdout
    encoder = backbone(SHAPES_ENCODER["name"], (32, 32, 3), width=SHAPES_ENCODER["width"],
                       weights=str(out))
    assert_every_weight_from(encoder, out)
