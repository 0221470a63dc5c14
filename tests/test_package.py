"""The top-level package: ``segcourse.load_model`` loads a saved model in a process that has
imported nothing of segcourse, where Keras' own ``load_model`` cannot (Keras 3.9 and later)."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import segcourse
from segcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from segcourse.losses import MaskedCrossEntropy
from segcourse.metrics import ConfusionMatrixMetric

# Run in a fresh interpreter: first Keras' load_model, then segcourse's.
FRESH = """
import sys

import keras
import numpy as np

path, inputs, labels, outputs = sys.argv[1:]
try:
    keras.saving.load_model(path)
    print("keras: loaded")
except Exception as error:
    print(f"keras: {type(error).__name__}: {error}".replace("\\n", " "))

import segcourse

model = segcourse.load_model(path)
np.save(outputs, np.asarray(model(np.load(inputs), training=False)))
print("loss:", type(model.loss).__name__, model.loss.class_weights)
print("scores:", model.evaluate(np.load(inputs), np.load(labels), verbose=0, return_dict=True))
"""


def keras_version() -> tuple[int, int]:
    major, minor = keras.__version__.split(".")[:2]
    return int(major), int(minor)


def pool_unpool_model():
    inputs = keras.Input((8, 8, 3))
    pooled, indices = MaxPoolingWithArgmax2D(2)(keras.layers.Conv2D(4, 1)(inputs))
    unpooled = MaxUnpooling2D(2)([pooled, indices])
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(unpooled))
    model.compile("adam", MaskedCrossEntropy(class_weights=[1.0, 2.0, 0.5]),
                  metrics=[ConfusionMatrixMetric(3, name="miou")])
    return model


def test_a_saved_model_loads_in_a_fresh_process_with_segcourse_load_model(tmp_path, rng):
    model = pool_unpool_model()
    x = rng.random((2, 8, 8, 3), dtype="float32")
    y = rng.integers(0, 3, (2, 8, 8))
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    result = subprocess.run(
        [sys.executable, "-c", FRESH, str(tmp_path / "model.keras"), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout
    # Keras alone does not know segcourse's layers (nothing registered them yet) ... Before 3.9
    # it imported whatever module a saved config named (since refused: CVE-2025-1550), which
    # registered them: there it loads.
    if keras_version() >= (3, 9):
        assert "Could not locate class 'MaxPoolingWithArgmax2D'" in said, said
    else:
        assert "keras: loaded" in said, said
    # ... segcourse.load_model does, and the loss and metric it was compiled with come back.
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model(x, training=False))
    assert "loss: MaskedCrossEntropy [1.0, 2.0, 0.5]" in said, said
    assert "'miou':" in said, said


# Load each saved model with one import, in a fresh interpreter, and store its output.
FRESH_ALL = """
import sys

import numpy as np

import segcourse

folder, names = sys.argv[1], sys.argv[2:]
x = np.load(f"{folder}/x.npy")
for name in names:
    model = segcourse.load_model(f"{folder}/{name}.keras")
    np.save(f"{folder}/{name}.out.npy", np.asarray(model(x, training=False)))
"""


def test_every_registered_model_loads_in_a_fresh_process_with_one_import(tmp_path, rng):
    from segcourse import models

    x = rng.random((1, 64, 64, 3), dtype="float32")
    np.save(tmp_path / "x.npy", x)
    outputs = {}
    for name in sorted(models.available()):
        model = models.build(name, 3, (64, 64, 3), model_size="small")
        for weight in model.weights:  # FCN's score layers start at zero: its output would be 0
            if weight.dtype.startswith("float") and not np.any(weight.numpy()):
                weight.assign(rng.normal(0, 0.1, weight.shape).astype(weight.dtype))
        model.save(tmp_path / f"{name}.keras")
        outputs[name] = np.asarray(model(x, training=False))
        assert np.abs(outputs[name]).max() > 0, name  # a comparison that can fail
    result = subprocess.run([sys.executable, "-c", FRESH_ALL, str(tmp_path), *outputs],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, expected in outputs.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}.out.npy"), expected,
                                      err_msg=name)


def test_load_model_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        segcourse.load_model(tmp_path / "missing.keras")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a valid Keras archive"):
        segcourse.load_model(tmp_path / "broken.keras")
