"""Does oneDNN compute the same gradients at every instruction set? One training step of the
small U-Net (16 ``shapes`` pictures of 64², masked cross-entropy, the weights of seed 0), its
gradients in float64 (the reference), under TensorFlow's Eigen kernels and under oneDNN held to
each instruction set (``ONEDNN_MAX_CPU_ISA``, which stands in for a CPU that has no more), each
in a fresh process.

Figures: for each weight tensor, the largest difference from the float64 gradient over the
largest gradient's size; the median and the maximum over the tensors. Float32 summed in another
order differs by about 1e-6 to 1e-5. Writes ``<out>.md`` and ``<out>.json``; it decided where
``segcourse.labs.environment.onednn_setting`` turns oneDNN on.

    python benchmarks/onednn_isa.py --out benchmarks/onednn_isa
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CONFIGS = {  # name: environment
    "float64 (Eigen)": {"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_FLOATX": "float64"},
    "Eigen (oneDNN off)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN, every instruction set": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "oneDNN held to AVX2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN held to AVX": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX"},
}
REFERENCE = "float64 (Eigen)"


def gradients(path: str) -> None:
    """In this process: one training step's loss and gradients, saved to ``path`` (.npz)."""
    import keras
    import tensorflow as tf

    from segcourse import losses, models
    from segcourse.data import shapes

    keras.utils.set_random_seed(0)
    images, masks = shapes.load("train", 16, 64, seed=0)
    model = models.build("unet", 6, input_shape=(64, 64, 3), model_size="small")
    if os.environ.get("KERAS_FLOATX") == "float64":  # the same weights, in float64
        weights = model.get_weights()
        keras.config.set_floatx("float64")
        model = models.build("unet", 6, input_shape=(64, 64, 3), model_size="small")
        model.set_weights([w.astype(np.float64) for w in weights])
        images = images.astype(np.float64)
    with tf.GradientTape() as tape:
        loss = losses.MaskedCrossEntropy()(masks, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    np.savez(path, loss=float(loss), names=[v.path for v in model.trainable_variables],
             **{f"g{i}": g.numpy() for i, g in enumerate(grads)})


def relative_differences(run: dict, reference: dict) -> list[float]:
    """Per weight tensor: max |run - reference| / max |reference| (in float64)."""
    count = len(reference["names"])
    return [float(np.abs(run[f"g{i}"].astype(np.float64) - reference[f"g{i}"]).max()
                  / max(np.abs(reference[f"g{i}"]).max(), 1e-30)) for i in range(count)]


def cpu_flags() -> str:
    from segcourse.labs.environment import cpuinfo_has_avx2

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.partition(":")[2].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown CPU")
    avx512 = " avx512f" in text
    return f"{model}; AVX2: {cpuinfo_has_avx2(text)}; AVX-512: {avx512}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/onednn_isa")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        gradients(args.child)
        return 0
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, env in CONFIGS.items():
            path = str(Path(folder) / f"{len(runs)}.npz")
            print(f"{name} ...", flush=True)
            subprocess.run([sys.executable, __file__, "--child", path],
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, check=True)
            with np.load(path) as saved:
                runs[name] = {key: saved[key] for key in saved.files}
    rows = []
    for name, run in runs.items():
        diffs = relative_differences(run, runs[REFERENCE])
        worst = "—" if name == REFERENCE else str(run["names"][int(np.argmax(diffs))])
        rows.append({"config": name, "environment": CONFIGS[name], "loss": float(run["loss"]),
                     "median": float(np.median(diffs)), "max": max(diffs), "worst": worst})
    report = {"cpu": cpu_flags(), "reference": REFERENCE, "rows": rows}
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# oneDNN's gradients by instruction set", "",
             f"CPU: {report['cpu']}. One training step of the small U-Net (16 `shapes` pictures "
             "of 64², seed 0); for each weight tensor, max |g − g64| / max |g64|, g64 the float64 "
             "gradient. Made "
             "by `python benchmarks/onednn_isa.py`.", "",
             "| kernels | loss | median over tensors | max | worst tensor |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['loss']:.6f} | {r['median']:.1e} | {r['max']:.1e} | "
              f"{r['worst']} |" for r in rows]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
