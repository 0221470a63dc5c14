"""``segcourse bench``: speed figures, measured side by side in one run, as a readable report.

Reports medians over repeats: the machine's ceiling (a large float32 matmul, GFLOP/s), the
``shapes`` generator (pictures per second), and training throughput of a model's CPU preset
(pictures per second). Timings vary with the machine; ratios within one report are what to read.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from segcourse.speed import matmul_gflops


def _median_seconds(work, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def shapes_rate(size=64, count=200, repeats=5) -> float:
    """Pictures per second the ``shapes`` generator draws at ``size``×``size`` (median)."""
    from segcourse.data import shapes

    return count / _median_seconds(lambda: shapes.load("train", count, size), repeats)


def training_rate(model="unet", size=64, batch=32, steps=10, repeats=3) -> float:
    """Pictures per second ``model``'s CPU preset trains on (loss only, no metric; median)."""
    import keras
    import numpy as np

    from segcourse import losses, models
    from segcourse.data import shapes

    images, masks = shapes.load("train", batch, size)
    net = models.build(model, 6, (size, size, 3), preset="cpu")
    net.compile(keras.optimizers.Adam(1e-3), losses.MaskedCrossEntropy())
    net.train_on_batch(images, masks.astype(np.int32))  # compile and warm up

    def run():
        for _ in range(steps):
            net.train_on_batch(images, masks.astype(np.int32))

    return steps * batch / _median_seconds(run, repeats)


def report(models_to_time=("unet", "fcn8s", "segnet"), out="benchmarks/report.md") -> str:
    """The speed report (ceiling, generator, training rates), written to ``out``."""
    from tqdm.auto import tqdm

    from segcourse.models import registry

    for name in models_to_time:  # before any timing: a typo should not cost a benchmark run
        registry.check(name, None)
    rows = [("machine ceiling: float32 matmul 2048²", f"{matmul_gflops():.0f} GFLOP/s")]
    for size in tqdm((64, 128), desc="shapes generator", leave=False):
        rows.append((f"shapes generator, {size}×{size}", f"{shapes_rate(size):.0f} pictures/s"))
    for name in tqdm(models_to_time, desc="training", leave=False):
        rows.append((f"training {name} (cpu preset), 64×64, batch 32",
                     f"{training_rate(name):.0f} pictures/s"))
    text = "\n".join([
        "# segcourse benchmark", "",
        f"{platform.platform(terse=True)}, {platform.processor() or platform.machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; medians of repeated runs.", "",
        "| what | median |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text


ARCHITECTURES = (
    ("plain conv, receptive field 7", "plain", {}),
    ("U-Net without skips", "unet", {"skips": False}),
    ("U-Net", "unet", {}),
)


def architecture_report(epochs=None, train_count=None, out="benchmarks/architectures.md") -> str:
    """Same data, same budget (the CPU profile's, unless given), three architectures: does the
    receptive field matter on ``shapes``, and do skips sharpen boundaries? Test mIoU overall
    and in the 2-pixel band around the true boundaries."""
    import tempfile

    from segcourse.data import shapes
    from segcourse.metrics import boundary_band, confusion_matrix, scores
    from segcourse.runs import load_run
    from segcourse.train import TrainConfig, predict_labels, train

    budget = TrainConfig(epochs=epochs, train_count=train_count).resolved()  # CPU profile
    epochs, train_count = budget.epochs, budget.train_count
    images, masks = shapes.load("test", 1000, 64)
    band = boundary_band(masks, 2)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for title, model, options in ARCHITECTURES:
            result = train(TrainConfig(model=model, epochs=epochs, train_count=train_count,
                                       model_options=options, out_dir=runs), verbose=0)
            net, _ = load_run(result.run_dir)
            predicted = predict_labels(net, images)
            on_band = scores(confusion_matrix(masks[band], predicted[band], shapes.NUM_CLASSES))
            rows.append((title, result.scores.miou, on_band.miou, result.seconds / 60))
    text = "\n".join([
        "# Does architecture matter on shapes?", "",
        f"CPU profile, {epochs} epochs × {train_count} fresh pictures, 64×64, test split of "
        "1000 pictures; boundary band = pixels within 2 of a label change.", "",
        "| model | test mIoU | mIoU on the boundary band | minutes |", "|---|---|---|---|",
        *(f"| {t} | {a:.3f} | {b:.3f} | {m:.1f} |" for t, a, b, m in rows), ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    return text


def make_class(reference_path, folder, count=100) -> dict[str, int]:
    """A class of ``count`` submissions of one lab, written into ``folder``: in every ten, six
    with the reference's solutions, two with every other exercise solved, one untouched student
    version and one unreadable file. Returns how many of each."""
    import nbformat

    from segcourse.labs.notebook import cell_info, read_notebook
    from segcourse.labs.student import student_notebook

    reference = read_notebook(reference_path)
    solutions = {cell_info(c)["id"]: c.source for c in reference.cells
                 if cell_info(c).get("role") == "solution"}
    halves = {k: v for i, (k, v) in enumerate(solutions.items()) if i % 2 == 0}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = {"solved": 0, "half solved": 0, "untouched": 0, "unreadable": 0}
    for index in range(count):
        kind = {8: "untouched", 9: "unreadable"}.get(
            index % 10, "half solved" if index % 10 in (6, 7) else "solved")
        kinds[kind] += 1
        path = folder / f"student{index:03d}.ipynb"
        if kind == "unreadable":
            path.write_text('{"cells": [')
            continue
        notebook = student_notebook(reference)
        answers = {"solved": solutions, "half solved": halves}.get(kind, {})
        for cell in notebook.cells:
            if cell_info(cell).get("id") in answers:
                cell.source = answers[cell_info(cell)["id"]]
        nbformat.write(notebook, path)
    return kinds


def grading_report(reference="notebooks/06_metrics_losses.ipynb", count=100, jobs=(1, 2),
                   out="benchmarks/grading.md") -> str:
    """Grading throughput: a class of ``count`` submissions (:func:`make_class`) graded with
    ``-j`` 1 and 2, side by side in one run, the machine's matmul ceiling beside them."""
    import json
    import tempfile

    from segcourse.grading.batch import Options, grade

    ceiling = matmul_gflops()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        kinds = make_class(reference, Path(work) / "class", count)
        for j in jobs:
            started = time.perf_counter()
            records = grade(reference, [Path(work) / "class"], Path(work) / f"out-{j}",
                            Options(jobs=j, progress=False))
            seconds = time.perf_counter() - started
            rows.append({"jobs": j, "submissions": len(records), "seconds": round(seconds, 1),
                         "per_minute": round(60 * len(records) / seconds, 1),
                         "points": sum(r.points for r in records.values())})
    mix = ", ".join(f"{n} {k}" for k, n in kinds.items())
    text = "\n".join([
        "# Grading throughput", "",
        f"{platform.platform(terse=True)}, {os.cpu_count()} cores; machine ceiling "
        f"{ceiling:.0f} GFLOP/s (float32 matmul 2048², median); {time.strftime('%Y-%m-%d %H:%M')}.",
        "", f"`segcourse grade {reference}` on a class of {count} ({mix}), sandboxed; wall time "
        "from the command's start (processes started, the reference run) to its summary.", "",
        "| -j | submissions | seconds | submissions / minute | points given |",
        "|---|---|---|---|---|",
        *(f"| {r['jobs']} | {r['submissions']} | {r['seconds']} | {r['per_minute']} | "
          f"{r['points']} |" for r in rows), ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(
        {"ceiling_gflops": round(ceiling, 1), "class": kinds, "runs": rows}, indent=1))
    return text
