"""How fast this machine multiplies matrices, and how long a training should take here.

A training's arithmetic is known before it starts: a forward pass costs 2 FLOPs per
multiply-accumulate (MACs from :func:`segcourse.analysis.summarize`), and a training step about
three forward passes (the backward pass computes gradients for activations and for weights,
each about one forward pass). What is not known is the fraction of the machine's ceiling a
training reaches; :data:`TRAINING_EFFICIENCY` is the fraction measured, so that the estimate
scales with the machine's matmul rate. That rate predicts a small network's training only
roughly (its steps are many small operations, whose cost follows the core more than its vector
units), so after a session's first epoch :class:`segcourse.pace.FirstEpochPace` prints the time
the rest will take at that epoch's pace.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

# The README's main job (U-Net, small size, 14 epochs of 4,000 + 500 pictures at 64×64 in
# batches of 16, 16.8 TFLOP) trained, summing its epochs, in 212 s on a 2-core AMD EPYC whose
# 2048² float32 matmul ran at 490 GFLOP/s (79 GFLOP/s, 16 % of it), in 297 s on one core of it
# with oneDNN held to AVX2 (132 GFLOP/s; 57, 43 %) and in about 470 s on one core held to AVX
# (105 GFLOP/s; 36, 34 %, with kernels that compute wrong gradients: labs/environment.py).
# Between the first two a quarter of the matmul rate cost 1.4 times the time, not 4; 25 % errs
# by less than a factor of 2 either way over that range. On an H200
# (benchmarks/accelerator.md) the paper-size U-Net, SegNet and FCN-8s reached 26-30 % of
# theirs; DeepLabV3's atrous convolutions 7 %.
TRAINING_EFFICIENCY = 0.25
FORWARD_PASSES_PER_STEP = 3


def in_fresh_process(function, *args):
    """``function(*args)`` in a fresh (spawned) Python process, its result: a measurement that
    must not inherit this process's state (op determinism, XLA, a loaded model)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def median_seconds(work, repeats: int, budget_seconds: float | None = None) -> float:
    """The median wall time of ``repeats`` calls of ``work()``; fewer when ``budget_seconds``
    runs out first, but at least one."""
    times, start = [], time.perf_counter()
    while len(times) < repeats and (not times or budget_seconds is None
                                    or time.perf_counter() - start < budget_seconds):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 5, budget_seconds: float | None = None) -> float:
    """The rate of an ``n``×``n`` float32 matrix product through TensorFlow (GFLOP/s, median of
    ``repeats``; fewer when ``budget_seconds`` runs out first, at least one after a warm-up)."""
    import numpy as np
    import tensorflow as tf  # TensorFlow-only: the probe times what training runs on

    a = tf.constant(np.random.default_rng(0).random((n, n), np.float32))
    # One number back, not the n×n product: on a GPU copying the product to the host would
    # take longer than computing it. The sum's n² additions are noise beside the 2n³.
    product = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, a)))
    product().numpy()  # trace and warm up
    return 2 * n**3 / median_seconds(lambda: product().numpy(), repeats, budget_seconds) / 1e9


@dataclass(frozen=True)
class Estimate:
    """A training's arithmetic and the time it should take on a machine of ``gflops``."""

    epochs: int
    tflop: float  # the remaining epochs' training and validation FLOPs, in TFLOP
    gflops: float  # the machine's matmul rate

    @property
    def seconds(self) -> float:
        """The time at :data:`TRAINING_EFFICIENCY` of the machine's matmul rate."""
        return self.tflop * 1e3 / (TRAINING_EFFICIENCY * self.gflops)

    def __str__(self) -> str:
        time_text = duration_text(self.seconds)
        return (f"estimate: about {time_text} for {self.epochs} epoch(s) ({self.tflop:.1f} "
                f"TFLOP of training and validation; this machine's matmul runs at "
                f"{self.gflops:.0f} GFLOP/s, and training reaches about "
                f"{TRAINING_EFFICIENCY:.0%} of that: a rough figure, the first epoch's pace "
                f"follows it)")


def training_tflop(macs_per_picture: float, train_pictures: int, val_pictures: int,
                   epochs: int) -> float:
    """FLOPs (in TFLOP) of ``epochs`` epochs: each training picture costs 3 forward passes,
    each validation picture one, each forward pass 2 FLOPs per MAC."""
    per_epoch = (FORWARD_PASSES_PER_STEP * train_pictures + val_pictures) * 2 * macs_per_picture
    return per_epoch * epochs / 1e12


def estimate_training(model, train_pictures: int, val_pictures: int, epochs: int,
                      probe_seconds: float = 2.0) -> Estimate:
    """How long ``epochs`` epochs of ``model`` take here, from its MACs and a probe of this
    machine's matmul rate that lasts about ``probe_seconds``."""
    import tensorflow as tf  # TensorFlow-only: the probe times what training runs on

    from segcourse.analysis import summarize

    tflop = training_tflop(summarize(model).macs, train_pictures, val_pictures, epochs)
    # A GPU does a 2048² product in well under a millisecond, which a call's launch overhead
    # would swamp: 8192² there (about 1.1 TFLOP a product).
    size = 8192 if tf.config.list_logical_devices("GPU") else 2048
    return Estimate(epochs, tflop, matmul_gflops(size, repeats=50, budget_seconds=probe_seconds))


def duration_text(seconds: float) -> str:
    """``"40 s"`` below two minutes, else ``"7 min"``."""
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
