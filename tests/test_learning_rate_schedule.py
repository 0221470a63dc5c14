"""The recipe's learning rate: linear warm-up from a tenth of the peak (Goyal et al. 2017 §2.2),
then cosine decay to 5 % of it (Loshchilov & Hutter 2017), each value computed by hand."""

import itertools
import math

import pytest

from segcourse.train import TrainConfig, learning_rate_schedule


def _rate(config, steps_per_epoch, step):
    return float(learning_rate_schedule(config, steps_per_epoch)(step))


def _cosine(peak, fraction):  # Loshchilov & Hutter's decay, floored at 5 % of the peak
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * fraction)))


@pytest.mark.parametrize("step, expected", [
    (0, 1e-3),                # a tenth of the peak
    (5, 1e-3 + 0.5 * 9e-3),   # half way up the line
    (10, 1e-2),               # the peak, after one epoch of 10 steps
    (25, _cosine(1e-2, 0.5)),  # half way through the 30 decay steps: 0.525 of the peak
    (40, 5e-4),               # the end: 5 % of the peak
])
def test_warm_up_then_cosine_decay(step, expected):
    config = TrainConfig(epochs=4, learning_rate=1e-2, warmup_epochs=1)
    assert _rate(config, 10, step) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("step, fraction", [(0, 0.0), (10, 0.25), (20, 0.5), (40, 1.0)])
def test_without_warm_up_it_is_the_cosine_decay_over_every_step(step, fraction):
    config = TrainConfig(epochs=4, learning_rate=1e-2, warmup_epochs=0)
    assert _rate(config, 10, step) == pytest.approx(_cosine(1e-2, fraction), rel=1e-5)


def test_the_warm_up_rises_and_the_decay_falls_step_by_step():
    config = TrainConfig(epochs=3, learning_rate=3e-3, warmup_epochs=0.5)
    rates = [_rate(config, 8, step) for step in range(25)]
    peak = rates.index(max(rates))
    assert peak == 4 and rates[peak] == pytest.approx(3e-3)
    assert all(a < b for a, b in itertools.pairwise(rates[:peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(rates[peak:]))


def test_the_profiles_train_without_warm_up_unless_asked():
    assert TrainConfig().resolved().warmup_epochs == 0
    assert TrainConfig(profile="gpu").resolved().warmup_epochs == 0
    assert TrainConfig(epochs=1, warmup_epochs=0.8).resolved().warmup_epochs == 0.8  # as given


@pytest.mark.parametrize("warmup", [-1, 3, 4, float("nan"), "1"])
def test_a_warm_up_that_leaves_no_decay_is_refused(warmup):
    with pytest.raises(ValueError, match=r"warmup_epochs must be a number from 0 up to, not "
                                         r"including, the 3 epochs"):
        TrainConfig(model="unet", epochs=3, warmup_epochs=warmup, image_size=32).validate()
