"""The package on Keras' JAX backend (docs/design.md, "Backends"): every registered model and
every public layer, run in a child process.

Keras fixes its backend when it is first imported, and this process has TensorFlow's, so one
child with ``KERAS_BACKEND=jax`` and TensorFlow made unimportable (what runs there is what a
JAX-only install runs) does all the work and reports each case as JSON; the tests here read the
report, so a failure names the model or layer and its error. Each model is built (small size,
a small input), run through ``predict_on_batch`` (``jax.jit``), saved, loaded and run again
(identical numbers); the saved files are then loaded here, on TensorFlow, and must give the
JAX outputs. Each layer is called eagerly on JAX and must give what the same layer, same
weights, gives on TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import keras
import numpy as np
import pytest

import segcourse
from segcourse import layers, models

SIZE, CLASSES = 32, 3  # a multiple of every model's total stride (32: SegNet, DeepLabV3+)
STATIC, DYNAMIC = (SIZE, SIZE, 3), (None, None, 3)
# A case: (registered model, options on top of the small size, input shape).
MODEL_CASES = {name: (name, {}, STATIC) for name in models.available()} | {
    # Resize by a scale, on a size unknown until run time (tf.image.resize's case on TensorFlow)
    "unet_bilinear_dynamic": ("unet", {"upsampling": "bilinear"}, DYNAMIC),
}
# A layer's constructor arguments (a function's keyword arguments) and its inputs, each
# (shape, "float") or (shape, positions): integers in 0 .. positions - 1 (window positions).
LAYER_CASES = {
    "AtrousConvBlock": ({"filters": 4, "dilation_rate": 2}, [((2, 8, 8, 3), "float")]),
    "ASPP": ({"filters": 4, "rates": (1, 2, 3)}, [((2, 8, 8, 3), "float")]),
    "ContextModule": ({}, [((2, 8, 8, 3), "float")]),
    "CropToReference": ({}, [((2, 9, 8, 3), "float"), ((2, 6, 5, 1), "float")]),
    "MaxPoolingWithArgmax2D": ({"padding": "same"}, [((2, 7, 7, 3), "float")]),
    "MaxUnpooling2D": ({}, [((2, 4, 4, 3), "float"), ((2, 4, 4, 3), 4),
                            ((2, 7, 7, 3), "float")]),
    "PyramidPooling": ({}, [((2, 12, 12, 8), "float")]),
    "Resize": ({"scale": 2, "interpolation": "bicubic"}, [((2, 5, 6, 3), "float")]),
    "BedOfNails": ({"factor": (2, 3)}, [((2, 4, 4, 3), "float")]),
    "ResizeConv": ({"filters": 4}, [((2, 4, 4, 3), "float")]),
    # The one public function no layer calls.
    "interpolate_by_zero_insertion": ({"method": "align_corners"}, [((2, 4, 4, 3), "float")]),
}
PUBLIC_LAYERS = sorted(name for name in layers.__all__
                       if isinstance(getattr(layers, name), type)
                       and issubclass(getattr(layers, name), keras.layers.Layer))
LAYERS_RUN = sorted(set(PUBLIC_LAYERS) | set(LAYER_CASES))
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}  # XLA, oneDNN and op-by-op runs sum in other orders


def layer_inputs(name):
    rng = np.random.default_rng(0)
    return [rng.integers(0, kind, shape).astype("int32") if isinstance(kind, int)
            else rng.standard_normal(shape).astype("float32")
            for shape, kind in LAYER_CASES[name][1]]


def run_layer(name):
    """The layer ``name`` of LAYER_CASES on its inputs, with weights drawn from a fixed seed
    (the same numbers on every backend), in inference mode; or the function ``name``."""
    kwargs, _ = LAYER_CASES[name]
    inputs = layer_inputs(name)
    if not isinstance(getattr(layers, name), type):
        return as_arrays(getattr(layers, name)(*inputs, **kwargs))
    layer = getattr(layers, name)(**kwargs)
    inputs = inputs[0] if len(inputs) == 1 else inputs
    layer(inputs)  # builds the weights
    rng = np.random.default_rng(1)
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in layer.weights])
    return as_arrays(layer(inputs, training=False))


def model_input():
    return np.random.default_rng(2).random((1, SIZE, SIZE, 3)).astype("float32")


def as_arrays(outputs):
    """One output or a list of them, as a list of NumPy arrays."""
    return [keras.ops.convert_to_numpy(y) for y in (outputs if isinstance(outputs, list)
                                                    else [outputs])]


def error_text(error):
    return "".join(traceback.format_exception(error)[-12:])


# The child's side: this file run as a script (CHILD below) with an output FOLDER.


def child_model(name, folder):
    """Build, run, save, load, run again, both runs through ``predict_on_batch`` (``jax.jit``,
    as ``fit`` and ``predict`` run); the output goes to FOLDER/NAME.npy, the model to
    FOLDER/NAME.keras. (Eager calls are the layer cases'.)"""
    keras.utils.set_random_seed(0)
    registered, options, input_shape = MODEL_CASES[name]
    model = models.build(registered, CLASSES, input_shape, model_size="small", **options)
    # Zero-initialized weights (FCN's scorers, biases) would make every comparison 0 == 0.
    rng = np.random.default_rng(1)
    model.set_weights([w if np.any(w) else rng.normal(0.0, 0.1, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    x = model_input()
    outputs = as_arrays(model.predict_on_batch(x))
    shapes = [list(y.shape) for y in outputs]
    if shapes != [[1, SIZE, SIZE, CLASSES]]:
        raise AssertionError(f"output shapes {shapes}, expected {[[1, SIZE, SIZE, CLASSES]]}")
    path = Path(folder) / f"{name}.keras"
    model.save(path)
    reloaded = keras.ops.convert_to_numpy(segcourse.load_model(path).predict_on_batch(x))
    np.save(Path(folder) / f"{name}.npy", outputs[0])
    return {"reload_max_diff": float(np.abs(outputs[0] - reloaded).max()),
            "scale": float(np.abs(outputs[0]).max())}


def child_layer(name, folder):
    if name not in LAYER_CASES:
        raise KeyError(f"no case for public layer {name}: add one to LAYER_CASES")
    outputs = run_layer(name)
    np.savez(Path(folder) / f"layer_{name}.npz", *outputs)
    return {"shapes": [list(y.shape) for y in outputs]}


def child_tensorflow_only_refusal(mode):
    """Resize's TensorFlow-only modes (tf.image.resize's own, and keras.ops' area) must say
    what to do, not fail inside TensorFlow or Keras."""
    try:
        layers.Resize(2, interpolation=mode)
    except ValueError as error:
        return {"message": str(error)}
    raise AssertionError(f"Resize(interpolation={mode!r}) was accepted on JAX")


def child_gradient_probe_refusal():
    """The analysis' gradient probes (tf.GradientTape) must refuse on JAX before importing TF."""
    from segcourse.analysis.checkerboard import gradient_checkerboard

    try:
        gradient_checkerboard(keras.layers.Conv2D(3, 3, strides=2))
    except ValueError as error:
        return {"message": str(error)}
    raise AssertionError("gradient_checkerboard ran on JAX")


def child_main(folder):
    report = {"backend": keras.backend.backend(), "models": {}, "layers": {}}
    cases = [("models", name, child_model, (name, folder)) for name in MODEL_CASES]
    cases += [("layers", name, child_layer, (name, folder)) for name in LAYERS_RUN]
    cases += [("refusals", mode, child_tensorflow_only_refusal, (mode,))
              for mode in ("gaussian", "area")]
    cases += [("refusals", "gradient", child_gradient_probe_refusal, ())]
    for group, name, run, args in cases:
        start = time.perf_counter()
        try:
            result = {"ok": True, **run(*args)}
        except Exception as error:  # reported, with its traceback, per case
            result = {"ok": False, "error": error_text(error)}
        result["seconds"] = round(time.perf_counter() - start, 2)
        report.setdefault(group, {})[name] = result
    report["tensorflow_loaded"] = sys.modules.get("tensorflow") is not None
    Path(folder, "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    child_main(sys.argv[1])


# The tests, on TensorFlow, reading the child's report.

# The child's interpreter: TensorFlow blocked before anything imports it, then this file.
CHILD = ("import runpy, sys; sys.modules['tensorflow'] = None; sys.argv = sys.argv[1:]; "
         "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: pip install -e .[test]")
    folder = tmp_path_factory.mktemp("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    env.setdefault("JAX_PLATFORMS", "cpu")  # no probing for accelerators: same numbers anywhere
    # Most of the child's time is XLA compiling (each initializer's shape, each model): code
    # compiled unoptimized takes half the time and runs the same ops, and a compilation cache
    # lets the loaded model reuse its original's program instead of compiling it again.
    env["XLA_FLAGS"] = (f"{env.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0 "
                        "--xla_llvm_disable_expensive_passes=true").strip()
    env |= {"JAX_COMPILATION_CACHE_DIR": str(folder / "xla_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    result = subprocess.run([sys.executable, "-c", CHILD, __file__, str(folder)], env=env,
                            capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).parent.parent)
    report = folder / "report.json"
    if result.returncode != 0 or not report.exists():
        pytest.fail(f"the JAX child exited with {result.returncode}:\n{result.stderr[-4000:]}")
    return folder, json.loads(report.read_text())


def case(jax_run, group, name):
    found = jax_run[1][group].get(name)
    assert found is not None, f"the JAX child did not run {group} {name}"
    assert found["ok"], f"{name} on JAX:\n{found['error']}"
    return found


def test_the_child_ran_on_jax_without_tensorflow(jax_run):
    report = jax_run[1]
    assert report["backend"] == "jax"
    assert not report["tensorflow_loaded"]


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_builds_runs_and_round_trips_on_jax(jax_run, name):
    found = case(jax_run, "models", name)
    assert found["reload_max_diff"] == 0.0, "the loaded model gives other numbers"
    assert found["scale"] > 0, "all-zero output: the comparisons would prove nothing"


@pytest.mark.parametrize("name", sorted(MODEL_CASES))
def test_model_saved_on_jax_gives_the_same_output_on_tensorflow(jax_run, name):
    case(jax_run, "models", name)
    folder = jax_run[0]
    loaded = segcourse.load_model(folder / f"{name}.keras")
    actual = keras.ops.convert_to_numpy(loaded(model_input(), training=False))
    np.testing.assert_allclose(actual, np.load(folder / f"{name}.npy"), **TOLERANCE)


def test_every_public_layer_has_a_case():
    assert set(PUBLIC_LAYERS) <= set(LAYER_CASES)


@pytest.mark.parametrize("name", LAYERS_RUN)
def test_layer_gives_the_tensorflow_numbers_on_jax(jax_run, name):
    case(jax_run, "layers", name)
    with np.load(jax_run[0] / f"layer_{name}.npz") as saved:
        on_jax = [saved[key] for key in saved.files]
    for a, b in zip(run_layer(name), on_jax, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, **TOLERANCE)


@pytest.mark.parametrize("mode", ["gaussian", "area"])
def test_tensorflow_only_resize_modes_are_refused_with_a_way_out(jax_run, mode):
    message = case(jax_run, "refusals", mode)["message"]
    assert f"interpolation={mode!r}" in message
    assert "KERAS_BACKEND=tensorflow" in message and "'bicubic'" in message


def test_gradient_probes_are_refused_with_a_way_out(jax_run):
    message = case(jax_run, "refusals", "gradient")["message"]
    assert message.startswith("gradient_checkerboard: the input gradient needs TensorFlow")
    assert "flat_field_response" in message and "KERAS_BACKEND=tensorflow" in message
