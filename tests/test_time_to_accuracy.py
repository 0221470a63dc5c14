"""The time-to-accuracy race: the peer model as keras-io builds it, and what a race records."""

import json

import numpy as np
import pytest

from segcourse import time_to_accuracy as tta
from segcourse.data import shapes
from segcourse.train import TrainConfig

TINY = TrainConfig(image_size=32, batch_size=8, train_count=32, val_count=16, test_count=8,
                   epochs=2)


def test_the_keras_io_model_has_the_examples_parameter_count():
    # Counted by hand from the example's layers (160×160×3 in, 3 classes): the entry conv and
    # its batch norm; per down block two separable convs (9·Cin depthwise + Cin·C pointwise
    # + C bias), two batch norms (4·C) and the 1×1 projection; per up block two 3×3
    # transposed convs, two batch norms and the 1×1 projection; the 3×3 classifier.
    def separable(cin, c):
        return 9 * cin + cin * c + c

    def conv(k, cin, c):
        return k * k * cin * c + c

    total = conv(3, 3, 32) + 4 * 32
    cin = 32
    for c in (64, 128, 256):
        total += separable(cin, c) + separable(c, c) + 2 * 4 * c + conv(1, cin, c)
        cin = c
    for c in (256, 128, 64, 32):
        total += conv(3, cin, c) + conv(3, c, c) + 2 * 4 * c + conv(1, cin, c)
        cin = c
    total += conv(3, 32, 3)
    assert total == 2_058_979  # the example's model.summary()
    assert tta.unet_like((160, 160, 3), 3).count_params() == total


def test_logits_and_softmax_versions_differ_only_in_the_last_activation(rng):
    images = rng.random((2, 64, 64, 3)).astype("float32")
    with_softmax, logits = tta.unet_like((64, 64, 3), 4), tta.unet_like((64, 64, 3), 4, False)
    logits.set_weights(with_softmax.get_weights())
    probabilities = with_softmax(images).numpy()
    assert probabilities.shape == (2, 64, 64, 4)
    z = logits(images).numpy()
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(probabilities, e / e.sum(-1, keepdims=True), atol=1e-5)


def test_a_race_is_reached_at_the_first_epoch_over_the_target():
    race = tta.Race("r", 1, 1, seconds=[10.0, 20.0, 30.0], val_miou=[0.5, 0.86, 0.84],
                    stopped="x")
    assert race.reached(0.85) == 20.0
    assert race.reached(0.86) == 20.0
    assert race.reached(0.9) is None


class FakeModel:
    stop_training = False


@pytest.mark.parametrize("miou, budget, stops, why", [
    ([0.5, 0.7], 1e9, False, "epochs ended"),
    ([0.5, 0.91], 1e9, True, "reached 0.9"),
    ([0.5, 0.7], 0.0, True, "the budget of 0 s ran out"),
    ([0.5, 0.95], 0.0, True, "reached 0.9"),  # reaching the target is said first
])
def test_the_stopwatch_stops_at_the_target_or_the_budget(miou, budget, stops, why):
    watch = tta.Stopwatch(0.9, budget, "its 2 epochs ended")
    watch.set_model(FakeModel())
    watch.on_train_begin()
    watch.on_epoch_end(0, {"val_miou": miou[0]})
    assert watch.model.stop_training is (budget == 0.0)
    watch.model.stop_training = False
    watch.on_epoch_end(1, {"val_miou": miou[1]})
    assert watch.model.stop_training is stops and why in watch.stopped
    assert watch.val_miou == miou and watch.seconds[0] <= watch.seconds[1]


def test_a_recipe_trains_on_the_configured_data_and_records_each_epoch():
    race = tta.run_recipe("keras-io model, segcourse recipe", TINY, targets=(1.01,))
    assert len(race.seconds) == len(race.val_miou) == 2
    assert race.seconds[0] < race.seconds[1] and race.stopped == "its 2 epochs ended"
    assert all(0 <= m <= 1 for m in race.val_miou)
    assert race.parameters == tta.unet_like((32, 32, 3), shapes.NUM_CLASSES).count_params()


def _figures(races, gflops=(150.0, 140.0)) -> dict:
    """A report's figures around ``races``: a made machine and the CPU profile's settings."""
    return {"machine": {"platform": "p", "cores": 2, "date": "d",
                        "matmul_gflops_start": gflops[0], "matmul_gflops_end": gflops[1]},
            "settings": {"image_size": 64, "batch_size": 32, "train_count": 4000,
                         "val_count": 500, "epochs": 20, "learning_rate": 5e-3, "seed": 0,
                         "targets": [0.85, 0.9], "budget_minutes": 30},
            "races": races}


def test_the_report_says_how_much_longer_the_best_peer_took():
    figures = _figures([
        {"recipe": "segcourse", "macs_per_picture": 48e6, "parameters": 1, "seconds": [60],
         "val_miou": [0.91], "stopped": "reached 0.9", "reached": {"0.85": 60, "0.9": 60}},
        {"recipe": "keras-io", "macs_per_picture": 163e6, "parameters": 2, "seconds": [600],
         "val_miou": [0.5], "stopped": "budget", "reached": {"0.85": None, "0.9": None}},
        {"recipe": "keras-io model, segcourse recipe", "macs_per_picture": 163e6,
         "parameters": 2, "seconds": [150], "val_miou": [0.9], "stopped": "reached 0.9",
         "reached": {"0.85": 120, "0.9": 150}}])
    text = tta.markdown(figures)
    assert "150 → 140 GFLOP/s" in text
    assert "| keras-io | 163 M | 2 | 1 | not reached | not reached | 0.500 |" in text
    assert "the best peer took 2.5× the course recipe's time" in text


def _races(peer_reached: dict) -> list:
    """The course recipe reaching 0.9 after 60 s, and one peer per ``name: seconds`` (None: it
    ran 600 s for keras-io, 150 s otherwise, without reaching 0.9)."""
    lasts = {"keras-io": 600, "keras-io model, segcourse recipe": 150}
    races = [{"recipe": "segcourse", "macs_per_picture": 48e6, "parameters": 1,
              "seconds": [60], "val_miou": [0.91], "stopped": "reached 0.9",
              "reached": {"0.85": 60, "0.9": 60}}]
    for name, seconds in peer_reached.items():
        races.append({"recipe": name, "macs_per_picture": 163e6, "parameters": 2,
                      "seconds": [seconds or lasts[name]], "val_miou": [0.9 if seconds else 0.8],
                      "stopped": "s", "reached": {"0.85": seconds, "0.9": seconds}})
    return races


@pytest.mark.parametrize("peers, said", [
    # neither reached 0.9: each run's length, shortest first, and why it ended
    ({"keras-io": None, "keras-io model, segcourse recipe": None},
     "To 0.9: no peer recipe reached it within its own recipe: \"keras-io model, segcourse "
     "recipe\" ended below it after 2.5 minutes (2.5× the course recipe's 1.0), at val mIoU "
     "0.800, s; \"keras-io\" ended below it after 10.0 minutes (10.0× the course recipe's "
     "1.0), at val mIoU 0.800, s."),
    # one reached it after 300 s, the other stopped below it after 150 s: between 2.5 and 5×
    ({"keras-io": 300, "keras-io model, segcourse recipe": None},
     "To 0.9: the best peer took between 2.5× and 5.0× the course recipe's time (\"keras-io\" "
     "reached it after 5.0 minutes; \"keras-io model, segcourse recipe\" ended below it after "
     "2.5 minutes (2.5× the course recipe's 1.0), at val mIoU 0.800, s)."),
    # one reached it after 300 s, the other stopped below it after 600 s: exactly 5×
    ({"keras-io": None, "keras-io model, segcourse recipe": 300},
     "To 0.9: the best peer took 5.0× the course recipe's time."),
])
def test_a_peer_that_ended_below_the_target_is_reported_with_its_run(peers, said):
    assert tta.markdown(_figures(_races(peers))).rstrip().endswith(said)


@pytest.mark.parametrize("change, said", [
    ({"recipes": ("segcourse", "fastai")}, "unknown recipe 'fastai'"),
    ({"budget_minutes": 0}, "budget_minutes must be a number of minutes above 0"),
    ({"budget_minutes": float("nan")}, "budget_minutes must be"),
])
def test_wrong_settings_are_refused_before_any_training(change, said, tmp_path):
    with pytest.raises(ValueError, match=said):
        tta.report(out=tmp_path / "t.md", config=TINY, **change)
    assert not (tmp_path / "t.md").exists()


@pytest.mark.slow
def test_the_command_writes_markdown_and_json(tmp_path):
    text = tta.report(out=tmp_path / "t.md", recipes=("segcourse",), config=TINY,
                      budget_minutes=1)
    figures = json.loads((tmp_path / "t.json").read_text())
    assert (tmp_path / "t.md").read_text() == text
    assert [r["recipe"] for r in figures["races"]] == ["segcourse"]
    assert figures["settings"]["image_size"] == 32
