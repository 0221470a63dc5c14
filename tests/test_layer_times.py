"""segcourse.layer_times: each layer's FLOPs and bytes by hand, its time, and the report's
section."""

import re

import keras
import pytest

from segcourse import layer_times, models


@pytest.fixture(scope="module")
def tiny():
    """A 3×3 convolution 3 → 4 channels on 8×8 pictures, then a ReLU."""
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.ReLU(name="relu")(
        keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("training, per_mac", [(False, 2), (True, 6)])
def test_flops_and_bytes_are_counted_as_by_hand(tiny, training, per_mac):
    conv, relu = layer_times.time_layers(tiny, batch=5, repeats=2, training=training)
    # 8·8 outputs × 4 channels × 3·3·3 taps = 6,912 MACs a picture; forward 2 FLOPs each, and
    # in training the input and weight gradients as many again each
    assert (conv.name, conv.kind, conv.output_shape) == ("conv", "Conv2D", (8, 8, 4))
    assert conv.flops == per_mac * 6912 * 5
    # inputs 8·8·3 and output 8·8·4 per picture, weights 3·3·3·4 + 4 biases, 4 bytes each
    assert conv.bytes_moved == 4 * (5 * (192 + 256) + 112)
    # FLOPs per byte are the forward pass's in either mode
    assert conv.intensity == pytest.approx(2 * 6912 * 5 / (4 * 2352))
    assert conv.seconds > 0 and conv.gflops == pytest.approx(conv.flops / conv.seconds / 1e9)
    assert (relu.kind, relu.flops, relu.bytes_moved) == ("ReLU", 0, 4 * 5 * 2 * 256)


def test_the_summary_splits_the_time_into_parts_that_add_up():
    rows = [layer_times.LayerTime("a", "Conv2D", (4, 4, 8), 800, 100, 1.0),
            layer_times.LayerTime("b", "Conv2D", (4, 4, 64), 3200, 100, 2.0),
            layer_times.LayerTime("n", "BatchNormalization", (4, 4, 64), 0, 50, 1.0)]
    done = layer_times.summary(rows)
    assert done["layers_seconds"] == 4.0
    assert done["convolutions"]["share_of_time"] == 0.75
    assert done["narrow"] == {"share_of_time": 0.25, "share_of_flops": 0.2, "gflops": 800e-9,
                              "intensity": 8.0}
    assert done["wide"]["gflops"] == pytest.approx(1600e-9) and done["wide"]["intensity"] == 32
    assert done["uncounted_share_of_time"] == 0.25
    assert done["uncounted_by_kind"] == {"BatchNormalization": 0.25}


def test_the_section_gives_every_rate_beside_the_ceilings(tiny, monkeypatch):
    monkeypatch.setattr(models, "build", lambda *args, **kwargs: tiny)  # measure builds it
    figures = layer_times.measure("tiny", sizes=(8,), batch=2, repeats=1)
    lines = layer_times.markdown_lines(figures, 100.0, "100 / 200 GFLOP/s")
    text = "\n".join(lines)
    assert "## Where the time goes, layer by layer (tiny, small)" in text
    table_rows = [line for line in lines if line.startswith("| 8×8") or line.startswith("| conv")]
    assert len(table_rows) == 3  # inference, training, the convolution's own row
    assert all(line.endswith("| 100 / 200 GFLOP/s |") for line in table_rows)
    whole = figures["sizes"]["8"]["training"]
    # the pass and its weight gradient: the whole network computes no gradient of its pictures
    assert whole["flops"] == 4 * 6912 * 2 and whole["whole_seconds"] > 0


def test_wrong_settings_are_refused(tiny):
    with pytest.raises(ValueError, match="batch and repeats are whole numbers of at least 1"):
        layer_times.time_layers(tiny, batch=0)


def test_a_layer_with_two_inputs_moves_both_and_its_training_step_folds_nothing():
    """A concatenation's bytes count both inputs. Its whole backward pass is slices of the
    output gradient: were that gradient a constant of the graph, the optimizer could compute
    it once, at tracing. The step takes its tensors as arguments and returns the gradient of
    each input."""
    import numpy as np
    import tensorflow as tf

    first, second = keras.Input((4, 4, 2)), keras.Input((4, 4, 3))
    model = keras.Model([first, second], keras.layers.Concatenate(name="cat")([first, second]))
    [cat] = layer_times.time_layers(model, batch=3, repeats=2, training=True)
    assert (cat.flops, cat.bytes_moved) == (0, 4 * 3 * (32 + 48 + 80))
    inputs = [tf.constant(np.ones((3, 4, 4, 2), "float32")),
              tf.constant(np.ones((3, 4, 4, 3), "float32"))]
    step, arguments = layer_times._traced(model.get_layer("cat"), inputs, True,
                                          np.ones((3, 4, 4, 5), "float32"))
    graph = step.get_concrete_function(*arguments).graph
    constants = [op for op in graph.get_operations() if op.type == "Const"]
    assert all(int(np.prod(op.outputs[0].shape)) <= 8 for op in constants)
    outputs, gradients = step(*arguments)
    assert outputs.shape == (3, 4, 4, 5) and [g.shape for g in gradients] == [
        (3, 4, 4, 2), (3, 4, 4, 3)]


def _normed(name="bn"):
    """A 1×1 convolution, then a batch norm on its 6×6×3 maps, the batch norm's weights and
    moving statistics away from their starts."""
    import numpy as np

    inputs = keras.Input((6, 6, 3))
    maps = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.9, name=name)(maps))
    model.get_layer(name).set_weights([np.array(v, "float32") for v in (
        [1.5, 0.5, 2.0], [0.1, -0.2, 0.3], [0.2, -0.1, 0.4], [1.2, 0.8, 2.5])])
    return model


def test_the_fused_kernel_computes_what_keras_batch_norm_computes():
    """Output, gradients of gamma, beta and the pictures, and the moving mean and variance
    after one step: the fused kernel's and Keras 3's agree (its unbiased batch variance scaled
    back to the biased one Keras averages)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(1)
    pictures = tf.constant(rng.normal(0.5, 2.0, (4, 6, 6, 3)).astype("float32"))
    gradient = rng.standard_normal((4, 6, 6, 3)).astype("float32")
    by_keras, by_fused = _normed().get_layer("bn"), _normed().get_layer("bn")
    step, arguments = layer_times._traced(by_keras, pictures, True, gradient)
    keras_out, keras_grads = step(*arguments)
    fused_out, fused_grads = layer_times.fused_batch_norm_step(by_fused)(
        pictures, tf.constant(gradient))
    np.testing.assert_allclose(fused_out, keras_out, rtol=1e-4, atol=1e-4)
    for fused, by_hand in zip(fused_grads, keras_grads, strict=True):  # gamma, beta, pictures
        np.testing.assert_allclose(fused, by_hand, rtol=1e-4, atol=1e-4)
    values = np.asarray(pictures).reshape(-1, 3)
    np.testing.assert_allclose(by_fused.moving_mean, 0.9 * np.array([0.2, -0.1, 0.4])
                               + 0.1 * values.mean(0), rtol=1e-5)
    np.testing.assert_allclose(by_fused.moving_variance, 0.9 * np.array([1.2, 0.8, 2.5])
                               + 0.1 * values.var(0), rtol=1e-5)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(by_fused, name), getattr(by_keras, name), rtol=1e-5)


@pytest.mark.parametrize("options, said", [
    ({"scale": False}, "scale=False, center=True"),
    ({"center": False}, "scale=True, center=False"),
    ({"axis": 1}, "normalises axis 1"),
])
def test_the_fused_kernel_refuses_a_batch_norm_it_cannot_stand_in_for(options, said):
    inputs = keras.Input((6, 6, 3))
    norm = keras.layers.BatchNormalization(name="odd", **options)
    keras.Model(inputs, norm(inputs))
    with pytest.raises(ValueError, match=re.escape(said)) as refusal:
        layer_times.fused_batch_norm_step(norm)
    assert "'odd'" in str(refusal.value) and "last axis with both gamma and beta" in str(
        refusal.value)


def test_the_section_compares_batch_norm_both_ways(monkeypatch):
    model = _normed()
    monkeypatch.setattr(models, "build", lambda *args, **kwargs: model)
    figures = layer_times.measure("normed", sizes=(6,), batch=2, repeats=1)
    norms = figures["sizes"]["6"]["training"]["batch_norm_kernels"]
    assert norms["layers"] == 1 and norms["keras_seconds"] > 0 and norms["fused_seconds"] > 0
    assert "batch_norm_kernels" not in figures["sizes"]["6"]["inference"]
    [row] = [line for line in layer_times.markdown_lines(figures, 100.0, "x")
             if line.startswith("| 6×6 | 1 |")]
    assert f"{norms['keras_seconds'] / norms['fused_seconds']:.2f}" in row
