"""The training estimate: its arithmetic by hand, its probe within its time budget."""

import math
import time

import keras
import pytest

from segcourse import speed


def test_training_flops_by_hand():
    # The README's main job: 48 M MACs a picture, 20 epochs of 4,000 training pictures
    # (3 forward passes each) and 500 validation pictures (1 each), 2 FLOPs per MAC.
    assert speed.training_tflop(48e6, 4000, 500, 20) == pytest.approx(
        (3 * 4000 + 500) * 2 * 48e6 * 20 / 1e12)
    assert speed.training_tflop(48e6, 4000, 500, 20) == pytest.approx(24.0)


def test_estimate_scales_with_the_machine():
    fast, slow = speed.Estimate(20, 24.0, 167.0), speed.Estimate(20, 24.0, 83.5)
    # 24 TFLOP at a quarter of 167 GFLOP/s: 24,000 / 41.75 s.
    assert fast.seconds == pytest.approx(24_000 / (0.25 * 167.0))
    assert slow.seconds == pytest.approx(2 * fast.seconds)
    assert str(fast).startswith("estimate: about 10 min for 20 epoch(s) (24.0 TFLOP")
    assert "167 GFLOP/s" in str(fast)
    assert str(speed.Estimate(1, 0.1, 100.0)).startswith("estimate: about 4 s for 1 epoch(s)")


def test_estimate_counts_the_models_macs():
    # One 3×3 convolution, 3 -> 8 channels, on 8×8 pictures with 'same' padding:
    # 8·8 positions × 8 filters × 3·3·3 weights = 13,824 MACs a picture.
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, padding="same")(inputs))
    estimate = speed.estimate_training(model, train_pictures=10, val_pictures=2, epochs=1,
                                       probe_seconds=0.2)
    assert estimate.tflop == pytest.approx((3 * 10 + 2) * 2 * 13_824 / 1e12)
    assert math.isfinite(estimate.gflops) and estimate.gflops > 0


def test_probe_keeps_to_its_budget():
    start = time.perf_counter()
    rate = speed.matmul_gflops(n=512, repeats=10_000, budget_seconds=0.5)
    assert time.perf_counter() - start < 5  # the budget, a warm-up and one product past it
    assert rate > 0

