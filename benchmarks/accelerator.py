"""The GPU profile's models on an accelerator, under Keras' JAX backend: does every model run
and survive a ``.keras`` round trip on the device, and how fast does each train at the GPU
profile's sizes, next to the same run's matrix-product ceiling.

Written for a machine with JAX and no TensorFlow (the GPU lent to this project's sessions); on
Colab the labs run the same models under TensorFlow. Writes ``<out>.md`` and ``<out>.json``.

    KERAS_BACKEND=jax python benchmarks/accelerator.py --out benchmarks/accelerator
    KERAS_BACKEND=jax python benchmarks/accelerator.py --sections --out benchmarks/gpu_sections

``--sections`` times instead the network each lab's GPU section trains, at that section's sizes,
in full float32 as the labs compute (``segcourse.labs.environment.full_float32``), and the
section's training steps on this device and, as a floor, on a T4 at its float32 peak.

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


# The labs' GPU sections: (lab, what, registered model or "mobilenetv2-segmenter", options,
# input shape, batch, classes, training steps in the section as the notebook counts them).
PETS_STEPS_32, PETS_STEPS_16 = -(-TRAIN_IMAGES // 32), -(-TRAIN_IMAGES // 16)  # 104, 207
SECTIONS = (
    ("04", "U-Net small", "unet", {"model_size": "small"}, (128, 128, 3), 32, 2,
     10 * PETS_STEPS_32),
    ("04", "U-Net small, no skips", "unet", {"model_size": "small", "skips": False},
     (128, 128, 3), 32, 2, 10 * PETS_STEPS_32),
    ("04", "SegNet small", "segnet", {"model_size": "small"}, (128, 128, 3), 32, 2,
     10 * PETS_STEPS_32),
    ("07", "U-Net, 32 filters", "unet", {"model_size": "small", "base_filters": 32},
     (128, 128, 3), 32, 2, 15 * PETS_STEPS_32),
    ("08", "MobileNetV2 + decoder (3 runs)", "mobilenetv2-segmenter", {}, (128, 128, 3), 32, 2,
     3 * 8 * PETS_STEPS_32),
    ("09", "FCN-32s", "fcn32s", {"alignment": "same"}, (128, 128, 3), 16, 2, 4 * PETS_STEPS_16),
    ("09", "FCN-16s", "fcn16s", {"alignment": "same"}, (128, 128, 3), 16, 2, 4 * PETS_STEPS_16),
    ("09", "FCN-8s", "fcn8s", {"alignment": "same"}, (128, 128, 3), 16, 2, 4 * PETS_STEPS_16),
    ("10", "DeepLabV3 small, OS 16", "deeplabv3", {"model_size": "small", "output_stride": 16},
     (128, 128, 3), 32, 2, 12 * PETS_STEPS_32),
    ("10", "DeepLabV3+ small, OS 16", "deeplabv3",
     {"model_size": "small", "output_stride": 16, "decoder": True}, (128, 128, 3), 32, 2,
     12 * PETS_STEPS_32),
    ("11", "U-Net, 16 filters (6 losses)", "unet", {"base_filters": 16}, (128, 128, 3), 32, 3,
     600 + 6 * 400),
    ("12", "paper U-Net, 572 -> 388 (2 runs)", "unet", {"variant": "paper", "depth": 4},
     (572, 572, 1), 4, 2, 2 * 10 * 30 * 4 // 4),
    ("14", "U-Net small (4 seeds)", "unet", {"model_size": "small"}, (128, 128, 3), 32, 2,
     4 * 5 * PETS_STEPS_32),
)
T4_FLOAT32_TFLOPS = 8.1  # NVIDIA's T4 datasheet: peak single precision


def mobilenetv2_segmenter(num_classes, size):
    """Lab 08's segmenter: a MobileNetV2 backbone, a U-Net-like decoder over C5 -> C2, x4."""
    from segcourse.models.backbones import backbone

    inputs = keras.Input((size, size, 3))
    found = backbone("mobilenetv2", (size, size, 3))(inputs * 2.0 - 1.0)  # Rescaling needs TF
    x = keras.layers.Conv2D(64, 1, activation="relu")(found["C5"])
    for stage, filters in (("C4", 64), ("C3", 32), ("C2", 32)):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = keras.layers.Concatenate()([x, found[stage]])
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D(4, interpolation="bilinear")(x)
    return keras.Model(inputs, keras.layers.Conv2D(num_classes, 1)(x))


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


def step_speed(model, batch: int, classes: int, steps: int = 10, repeats: int = 3) -> dict:
    """Seconds per ``train_on_batch`` step of ``model`` on one fixed random batch (median of
    ``repeats`` runs of ``steps``, after two warm-up steps that compile), and its MACs."""
    macs = summarize(model).macs
    model.compile(keras.optimizers.Adam(1e-4), losses.MaskedCrossEntropy())
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.input_shape[1:]), np.float32)
    y = rng.integers(0, classes, (batch, *model.output_shape[1:3])).astype(np.int32)
    start = time.perf_counter()
    for _ in range(2):
        model.train_on_batch(x, y)
    warm_up = time.perf_counter() - start

    def run():
        for _ in range(steps):
            model.train_on_batch(x, y)

    seconds = median_seconds(run, repeats) / steps
    rate = batch / seconds
    return {"gmacs_per_picture": macs / 1e9, "step_ms": 1e3 * seconds,
            "pictures_per_second": rate, "tflops": training_tflop(macs, rate, 0, 1),
            "compile_seconds": warm_up}


def training_speed(name: str, size: int, batch: int, policy: str, steps: int = 10,
                   repeats: int = 3) -> dict:
    """Pictures/s and achieved TFLOP/s of one training configuration."""
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        model = registry.build(name, CLASSES, (size, size, 3))
        speed = step_speed(model, batch, CLASSES, steps, repeats)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    return {"model": name, "size": size, "batch": batch, "policy": policy, **speed,
            "pets_epoch_seconds": TRAIN_IMAGES / speed["pictures_per_second"]}


def section_speed(lab, what, name, options, shape, batch, classes, section_steps, steps=10,
                  repeats=3) -> dict:
    """One lab's GPU-section network at its sizes: a step's time and the section's training."""
    keras.utils.set_random_seed(0)
    model = (mobilenetv2_segmenter(classes, shape[0]) if name == "mobilenetv2-segmenter"
             else registry.build(name, classes, shape, **options))
    speed = step_speed(model, batch, classes, steps, repeats)
    flop = 6 * speed["gmacs_per_picture"] * 1e9 * batch * section_steps
    return {"lab": lab, "network": what, "input": list(shape), "batch": batch,
            "section_steps": section_steps, **speed,
            "section_minutes": section_steps * speed["step_ms"] / 1e3 / 60,
            "t4_floor_minutes": flop / (T4_FLOAT32_TFLOPS * 1e12) / 60}


def _heading(title: str, result: dict) -> list[str]:
    return [f"# {title} (Keras JAX backend)", "",
            f"Device: {result['device']}. Keras {result['keras']}, JAX {result['jax']}, "
            f"Python {result['python']}. Written by `{result['command']}`.", ""]


def _ending(lines: list[str], result: dict) -> str:
    lines += [""] + [f"- {name}: {error}" for name, error in result["failures"].items()]
    return "\n".join(lines) + "\n"


def _sections_markdown(result: dict) -> str:
    lines = [
        *_heading("The labs' GPU sections on an accelerator", result),
        f"Same-run matrix-product ceiling ({result['matmul_size']}², median of 5, full float32 "
        f"as the labs compute): {result['ceiling_tflops']['float32']:.0f} TFLOP/s.", "",
        "Each lab's GPU-section network at that section's sizes (2 classes, 3 for lab 11), Adam "
        "and MaskedCrossEntropy on one fixed random batch: the step alone, without the input "
        "pipeline, validation or evaluation. *Section* = the section's training steps at this "
        "step time. *T4 floor* = the section's training FLOPs at a T4's float32 peak "
        f"({T4_FLOAT32_TFLOPS} TFLOP/s): no T4 can be faster; a real one reaches a fraction of "
        "its peak, and Colab's 2 CPU cores may feed it more slowly still (not measured here).",
        "", "| lab | network | input | batch | GMACs/picture | ms/step | TFLOP/s | steps | "
        "section (min) | T4 floor (min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["sections"]:
        lines.append(
            f"| {r['lab']} | {r['network']} | {'×'.join(map(str, r['input']))} | {r['batch']} | "
            f"{r['gmacs_per_picture']:.2f} | {r['step_ms']:.1f} | {r['tflops']:.1f} | "
            f"{r['section_steps']:,} | {r['section_minutes']:.2f} | "
            f"{r['t4_floor_minutes']:.1f} |")
    return _ending(lines, result)


def _markdown(result: dict) -> str:
    ceiling = result["ceiling_tflops"]
    lines = [
        *_heading("segcourse on an accelerator", result),
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
    return _ending(lines, result)


def main(argv=None) -> int:
    """Measure, then write ``<out>.md`` and ``<out>.json``; exit 1 if any model failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/accelerator",
                        help="report path without extension (default: %(default)s)")
    parser.add_argument("--round-trips-only", action="store_true",
                        help="check every model's round trip, time no training")
    parser.add_argument("--sections", action="store_true",
                        help="time the labs' GPU-section networks instead (full float32)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and one timing, to try the script on a CPU")
    args = parser.parse_args(argv)
    import jax

    if args.sections:
        return sections_main(args)
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


def sections_main(args) -> int:
    """Time every entry of SECTIONS; write ``<out>.md`` and ``<out>.json`` after each."""
    import jax

    from segcourse.labs.environment import full_float32

    full_float32()
    sections = SECTIONS
    if args.smoke:  # the CPU's try: 32 px (the paper U-Net at its smallest valid input, 188)
        sections = [(lab, what, name, options, (188, 188, 1) if shape[0] == 572 else
                     (32, 32, 3), 2, classes, steps)
                    for lab, what, name, options, shape, _, classes, steps in SECTIONS]
    result = {"device": str(jax.devices()[0].device_kind), "keras": keras.__version__,
              "jax": jax.__version__, "python": platform.python_version(),
              "command": "KERAS_BACKEND=jax python benchmarks/accelerator.py --sections "
                         "--out benchmarks/gpu_sections",
              "matmul_size": 512 if args.smoke else 8192, "sections": [], "failures": {}}
    result["ceiling_tflops"] = {"float32": matmul_tflops("float32", result["matmul_size"])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for section in sections:
        try:
            result["sections"].append(section_speed(*section, **(
                {"steps": 1, "repeats": 1} if args.smoke else {})))
            print(result["sections"][-1], flush=True)
        except Exception as error:  # a report of what failed, not a stop
            result["failures"][f"lab {section[0]} {section[1]}"] = (
                f"{type(error).__name__}: {error}"[:300])
            print("FAILED", section[:2], error, flush=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(_sections_markdown(result))
    print(_sections_markdown(result))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
