"""The GPU profile's models on an accelerator, under Keras' JAX backend: does every model run
and survive a ``.keras`` round trip on the device, and how fast does each train at the GPU
profile's sizes, next to the same run's matrix-product ceiling.

Written for a machine with JAX and no TensorFlow (the GPU lent to this project's sessions); on
Colab the labs run the same models under TensorFlow. Writes ``<out>.md`` and ``<out>.json``.

    KERAS_BACKEND=jax python benchmarks/accelerator.py --out benchmarks/accelerator

Training figures: medians of ``repeats`` timings of ``steps`` ``train_on_batch`` calls on one
fixed batch (each call returns the loss as a number, so each step has finished when it is
timed), after two warm-up steps that compile. FLOPs per training step are taken as 3 × the
forward pass's 2 × MACs (``segcourse.analysis.summarize``): forward, and about twice that back.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np

from segcourse import load_model, losses
from segcourse.analysis import summarize
from segcourse.data.pets import TRAIN_IMAGES
from segcourse.models import registry
from segcourse.speed import median_seconds, training_tflop

CLASSES = 3  # Pets trimaps with the border as a class
# (model, size, batch, dtype policy): what the GPU profile would train on Pets.
TRAINING = (
    ("unet", 256, 16, "float32"),
    ("unet", 256, 16, "mixed_bfloat16"),
    ("unet", 128, 32, "mixed_bfloat16"),
    ("fcn8s", 256, 16, "mixed_bfloat16"),
    ("segnet", 256, 16, "mixed_bfloat16"),
    ("deeplabv3", 256, 16, "mixed_bfloat16"),
    ("pspnet", 256, 16, "mixed_bfloat16"),
)


def matmul_tflops(dtype: str, n: int = 8192, repeats: int = 5) -> float:
    """The device's matrix-product rate for ``dtype`` (TFLOP/s, median of ``repeats``)."""
    import jax

    a = jax.random.normal(jax.random.key(0), (n, n), dtype=dtype)
    product = jax.jit(lambda x: x @ x)
    product(a).block_until_ready()
    return 2 * n**3 / median_seconds(lambda: product(a).block_until_ready(), repeats) / 1e12


def round_trip(name: str, size: int = 64) -> dict:
    """Build ``name`` (paper size), run it, save and load it, and compare the outputs."""
    model = registry.build(name, CLASSES, (size, size, 3))
    rng = np.random.default_rng(0)
    for weight in model.weights:  # FCN's score layers start at zero: its output would be 0
        if weight.dtype.startswith("float") and not np.any(keras.ops.convert_to_numpy(weight)):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype(weight.dtype))
    x = rng.random((2, size, size, 3), np.float32)
    before = keras.ops.convert_to_numpy(model(x))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.keras"
        model.save(path)
        after = keras.ops.convert_to_numpy(load_model(path)(x))
    return {"model": name, "output_shape": list(before.shape),
            "max_abs_difference": float(np.max(np.abs(before - after))),
            "max_abs_output": float(np.max(np.abs(before))),
            "ok": before.shape == (2, size, size, CLASSES) and np.abs(before).max() > 0
            and np.allclose(before, after, atol=1e-5)}


def training_speed(name: str, size: int, batch: int, policy: str, steps: int = 10,
                   repeats: int = 3) -> dict:
    """Pictures/s and achieved TFLOP/s of one training configuration."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = registry.build(name, CLASSES, (size, size, 3))
        macs = summarize(model).macs
        model.compile(keras.optimizers.Adam(1e-4), losses.MaskedCrossEntropy())
        rng = np.random.default_rng(0)
        x = rng.random((batch, size, size, 3), np.float32)
        y = rng.integers(0, CLASSES, (batch, size, size)).astype(np.int32)
        start = time.perf_counter()
        for _ in range(2):
            model.train_on_batch(x, y)
        warm_up = time.perf_counter() - start

        def run():
            for _ in range(steps):
                model.train_on_batch(x, y)

        seconds = median_seconds(run, repeats) / steps
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    rate = batch / seconds
    return {"model": name, "size": size, "batch": batch, "policy": policy,
            "gmacs_per_picture": macs / 1e9, "step_ms": 1e3 * seconds,
            "pictures_per_second": rate, "tflops": training_tflop(macs, rate, 0, 1),
            "pets_epoch_seconds": TRAIN_IMAGES / rate, "compile_seconds": warm_up}


def _markdown(result: dict) -> str:
    ceiling = result["ceiling_tflops"]
    lines = [
        "# segcourse on an accelerator (Keras JAX backend)", "",
        f"Device: {result['device']}. Keras {result['keras']}, JAX {result['jax']}, "
        f"Python {result['python']}. Written by `{result['command']}`.", "",
        f"Same-run matrix-product ceiling ({result['matmul_size']}², median of 5): float32 "
        f"{ceiling['float32']:.0f} TFLOP/s, bfloat16 {ceiling['bfloat16']:.0f} TFLOP/s (float32 at "
        "JAX's default precision, which on NVIDIA GPUs from Ampere on multiplies in TF32).", "",
        "## Every model on the device: forward pass and `.keras` round trip (64×64, paper size)",
        "",
        "Weights that start at zero (FCN's score layers) are drawn at random first, so that no "
        "output is all zeros and the comparison can fail.", "",
        "| model | output | largest output | max abs difference after reload | ok |",
        "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {tuple(r['output_shape'])} | {r['max_abs_output']:.2e} | "
              f"{r['max_abs_difference']:.1e} | {'yes' if r['ok'] else 'NO'} |"
              for r in result["round_trips"]]
    lines += ["", "## Training speed at the GPU profile's sizes (paper-size models, Adam, "
              "MaskedCrossEntropy)", "",
              f"A Pets epoch is {TRAIN_IMAGES} pictures. Fraction: of the same-run ceiling for "
              "the policy's compute dtype.", "",
              "| model | size | batch | policy | GMACs/picture | ms/step | pictures/s | TFLOP/s "
              "| of ceiling | Pets epoch (s) | compile (s) |", "|---|---|---|---|---|---|---|---|"
              "---|---|---|"]
    for r in result["training"]:
        peak = ceiling["bfloat16" if "bfloat16" in r["policy"] else "float32"]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['policy']} | "
            f"{r['gmacs_per_picture']:.2f} | {r['step_ms']:.1f} | {r['pictures_per_second']:.0f}"
            f" | {r['tflops']:.1f} | {r['tflops'] / peak:.1%} | {r['pets_epoch_seconds']:.1f} | "
            f"{r['compile_seconds']:.0f} |")
    lines += [""] + [f"- {name}: {error}" for name, error in result["failures"].items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Measure, then write ``<out>.md`` and ``<out>.json``; exit 1 if any model failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/accelerator",
                        help="report path without extension (default: %(default)s)")
    parser.add_argument("--round-trips-only", action="store_true",
                        help="check every model's round trip, time no training")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one timing, to try the script on a CPU")
    args = parser.parse_args(argv)
    import jax

    training = () if args.round_trips_only else TRAINING
    if args.smoke:
        training = [(name, 32, 2, policy) for name, _, _, policy in TRAINING[1:2] + TRAINING[3:]]

    print(f"backend {keras.backend.backend()}, devices {jax.devices()}", flush=True)
    result = {"device": str(jax.devices()[0].device_kind), "keras": keras.__version__,
              "jax": jax.__version__, "python": platform.python_version(),
              "command": "KERAS_BACKEND=jax python benchmarks/accelerator.py",
              "matmul_size": 512 if args.smoke else 8192,
              "round_trips": [], "training": [], "failures": {}}
    result["ceiling_tflops"] = {d: matmul_tflops(d, result["matmul_size"])
                                for d in ("float32", "bfloat16")}
    print("ceiling", result["ceiling_tflops"], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after every measurement: a run stopped at its time limit keeps what it had
        out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(_markdown(result))

    for name in sorted(registry.available()):
        try:
            result["round_trips"].append(round_trip(name))
            print(result["round_trips"][-1], flush=True)
        except Exception as error:  # a report of what failed, not a stop
            result["failures"][f"{name} round trip"] = f"{type(error).__name__}: {error}"[:300]
            print("FAILED", name, error, flush=True)
        save()
    for config in training:
        try:
            result["training"].append(training_speed(*config, **(
                {"steps": 1, "repeats": 1} if args.smoke else {})))
            print(result["training"][-1], flush=True)
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"[:300]
            result["failures"][" ".join(map(str, config))] = failure
            print("FAILED", config, error, flush=True)
        save()
    print(_markdown(result))
    return 1 if result["failures"] or not all(r["ok"] for r in result["round_trips"]) else 0


if __name__ == "__main__":
    sys.exit(main())
