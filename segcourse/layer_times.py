"""Where a network's time goes, layer by layer.

Each layer of a functional model runs alone in a ``tf.function`` on a batch of random inputs of
its own input shape, in inference or in training (its training-mode pass and the gradients of
its weights and inputs). Beside its time go its FLOPs (2 × MACs forward,
:func:`segcourse.analysis.summarize`; 3 × that in training for a layer with weights) and the
least bytes its forward pass must move: its inputs and its output once each, and its weights
(float32). FLOPs per byte is the *arithmetic intensity* of the roofline model (Williams,
Waterman & Patterson, CACM 2009): a layer that does few FLOPs per byte can be held back by
memory rather than arithmetic. A 3×3 convolution with C channels in and out does about 9·C/4
FLOPs per byte of its input and output; batch norm, ReLU, pooling and concatenation do none
that are counted and still take their time.

Each time is less the time of a call of a traced function that does nothing with the same
arguments (the per-call overhead a whole network pays once). A layer run alone repeatedly finds
its inputs in the cache, and the whole network in one ``tf.function`` lets the graph optimizer
rewrite ops across layers: the layers' sum and the whole network differ, and the report gives
both. Measured with TensorFlow on a CPU, where a call returns when its result is computed (on a
GPU it would return before).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BYTES_PER_VALUE = 4  # float32
MODES = ("inference", "training")


@dataclass(frozen=True)
class LayerTime:
    """One layer on one batch, in inference or in training: what it computes and moves, and how
    long it took."""

    name: str
    kind: str
    output_shape: tuple  # one picture's
    flops: int  # for the batch (3 passes in training); 0 for layers whose arithmetic is not counted
    bytes_moved: int  # at least, by the forward pass: inputs + output + weights, once each
    seconds: float  # median over repeats, less a call's overhead
    training: bool = False

    @property
    def forward_flops(self) -> int:
        """The forward pass's FLOPs for the batch (a third of a training step's)."""
        return self.flops // 3 if self.training else self.flops

    @property
    def intensity(self) -> float:
        """The forward pass's FLOPs per byte moved (the roofline model's arithmetic intensity)."""
        return self.forward_flops / self.bytes_moved

    @property
    def gflops(self) -> float:
        """The rate it reached, GFLOP/s."""
        return self.flops / self.seconds / 1e9


def time_layers(model, batch: int = 32, repeats: int = 9,
                training: bool = False) -> list[LayerTime]:
    """:class:`LayerTime` of every layer of ``model`` (a functional Keras model with a fixed
    input size, TensorFlow backend) but its inputs, in the model's order. ``training``: the
    forward pass in training mode and the backward pass, the gradients of the layer's weights
    and inputs for a random gradient of its output (3 × the forward FLOPs for a convolution:
    the pass, the input gradient, the weight gradient)."""
    import tensorflow as tf

    from segcourse import graph
    from segcourse.analysis import summarize

    if not isinstance(batch, int) or batch < 1 or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"time_layers: batch and repeats are whole numbers of at least 1; got "
                         f"batch={batch!r}, repeats={repeats!r}.")
    rows = {row.name: row for row in summarize(model, BYTES_PER_VALUE).rows}
    rng = np.random.default_rng(0)
    times = []
    for layer in model.layers:
        call = graph.calls(layer)[0]
        if not call.inputs:  # the input layer
            continue
        inputs = [tf.constant(rng.standard_normal((batch, *t.shape[1:])).astype(np.float32))
                  for t in call.inputs]
        output_shape = tuple(call.outputs[0].shape[1:])
        step, arguments = _traced(layer, inputs[0] if len(inputs) == 1 else inputs, training,
                                  rng.standard_normal((batch, *output_shape)).astype(np.float32))
        seconds = _seconds(step, arguments, repeats)
        row = rows[layer.name]
        moved = batch * (sum(int(np.prod(t.shape[1:])) for t in call.inputs)
                         + int(np.prod(output_shape))) + row.params
        times.append(LayerTime(layer.name, type(layer).__name__, output_shape,
                               (6 if training else 2) * (row.macs or 0) * batch,
                               BYTES_PER_VALUE * moved, seconds, training))
    return times


def _seconds(step, arguments, repeats) -> float:
    """The median time of ``step(*arguments)`` less that of a traced function that returns its
    arguments untouched (the call's own overhead); at least a microsecond."""
    import tensorflow as tf

    from segcourse.speed import median_seconds

    nothing = tf.function(lambda *values: values)
    for function in (step, nothing):
        function(*arguments)  # trace and warm up
    spent = median_seconds(lambda: step(*arguments), repeats)
    overhead = median_seconds(lambda: nothing(*arguments), repeats)
    return max(spent - overhead, 1e-6)


def _traced(layer, inputs, training, upstream, with_inputs=True):
    """``(function, arguments)``: ``layer`` (or a model) traced once on ``inputs``, for
    inference, or the training-mode pass and the gradients of its weights (and, ``with_inputs``,
    of its inputs) for the output gradient ``upstream``. The tensors are arguments, never
    captured: the graph optimizer folds constants it can, and a gradient computed from a
    constant output gradient (a concatenation's, a bias's) would be computed once, at tracing."""
    import tensorflow as tf

    if not training:
        return tf.function(lambda pictures: layer(pictures, training=False)), (inputs,)

    @tf.function
    def step(pictures, gradient):
        with tf.GradientTape() as tape:
            if with_inputs:
                tape.watch(pictures)
            outputs = layer(pictures, training=True)
        sources = [*layer.trainable_variables,
                   *(tf.nest.flatten(pictures) if with_inputs else [])]
        # the outputs returned too: a convolution's gradients do not read its output, and a
        # traced step that returned only them would have its forward pass pruned away
        return outputs, tape.gradient(outputs, sources, output_gradients=gradient)

    return step, (inputs, tf.constant(upstream))


def fused_batch_norm_step(layer):
    """``layer`` (a Keras ``BatchNormalization`` over the last axis of 4-D maps) in training as
    TensorFlow's fused kernel computes it, traced: ``step(pictures, gradient)`` returns the
    output and the gradients of gamma, beta and the pictures, and moves the moving mean and
    variance as Keras 3's layer does (Ioffe & Szegedy 2015's transform; one op forward, one
    backward, where Keras 3 runs separate moment and normalisation ops). The fused kernel's
    batch variance is the unbiased one; Keras averages the biased one, so it is scaled back.
    A layer the kernel cannot stand in for (another axis, no gamma or no beta) is refused."""
    import tensorflow as tf

    if layer.axis not in (-1, len(layer.input.shape) - 1) or not (layer.scale and layer.center):
        raise ValueError(
            f"fused_batch_norm_step: {layer.name!r} normalises axis {layer.axis} with "
            f"scale={layer.scale}, center={layer.center}; the fused kernel stands in only for "
            "a batch norm over the last axis with both gamma and beta. Leave this layer out of "
            "the comparison.")
    momentum = layer.momentum

    @tf.function
    def step(pictures, gradient):
        with tf.GradientTape() as tape:
            tape.watch(pictures)
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                pictures, layer.gamma, layer.beta, epsilon=layer.epsilon, is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(pictures)[:-1]), variance.dtype)
        layer.moving_mean.assign(layer.moving_mean * momentum + mean * (1.0 - momentum))
        layer.moving_variance.assign(layer.moving_variance * momentum
                                     + variance * (count - 1.0) / count * (1.0 - momentum))
        return outputs, tape.gradient(outputs, [layer.gamma, layer.beta, pictures],
                                      output_gradients=gradient)

    return step


def batch_norm_kernels(model, batch: int = 32, repeats: int = 9) -> dict:
    """Every batch-norm layer of ``model`` in training, timed as Keras 3 runs it and as
    :func:`fused_batch_norm_step` does, one after the other on the same inputs: the summed
    seconds each way (less a call's overhead, as :func:`time_layers`), and the layers
    counted."""
    import keras
    import tensorflow as tf

    from segcourse import graph

    rng = np.random.default_rng(0)
    keras_seconds = fused_seconds = 0.0
    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        shape = (batch, *graph.calls(layer)[0].inputs[0].shape[1:])
        pictures = tf.constant(rng.standard_normal(shape).astype(np.float32))
        gradient = rng.standard_normal(shape).astype(np.float32)
        keras_seconds += _seconds(*_traced(layer, pictures, True, gradient), repeats)
        fused_seconds += _seconds(fused_batch_norm_step(layer),
                                  (pictures, tf.constant(gradient)), repeats)
    return {"layers": len(norms), "keras_seconds": keras_seconds,
            "fused_seconds": fused_seconds}


def whole_seconds(model, batch: int = 32, repeats: int = 9, training: bool = False) -> float:
    """The median time of the whole model on a batch in one ``tf.function``, less the call's
    overhead: its forward pass, or (``training``) the training-mode pass and the gradients of
    every weight (not of the pictures)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    pictures = tf.constant(rng.random((batch, *model.inputs[0].shape[1:]), np.float32))
    upstream = rng.standard_normal((batch, *model.outputs[0].shape[1:])).astype(np.float32)
    return _seconds(*_traced(model, pictures, training, upstream, with_inputs=False), repeats)


def summary(times: list[LayerTime], narrow_channels: int = 16) -> dict:
    """Shares of the layers' summed time: the convolutions' (and their GFLOP/s and FLOPs per
    byte), split into those with at most ``narrow_channels`` output channels and the wider ones,
    and the layers with no counted arithmetic, by kind. FLOPs per byte are the forward pass's,
    in training too."""
    total = sum(t.seconds for t in times)
    convs = [t for t in times if t.flops > 0]
    flops = sum(t.flops for t in convs)

    def part(group):
        seconds, done = sum(t.seconds for t in group), sum(t.flops for t in group)
        return {"share_of_time": seconds / total, "share_of_flops": done / flops if flops else 0.0,
                "gflops": done / seconds / 1e9 if seconds else 0.0,
                "intensity": sum(t.forward_flops for t in group)
                / sum(t.bytes_moved for t in group) if group else 0.0}

    uncounted = {}
    for t in times:
        if t.flops == 0:
            uncounted[t.kind] = uncounted.get(t.kind, 0.0) + t.seconds / total
    return {"layers_seconds": total, "narrow_channels": narrow_channels,
            "convolutions": part(convs),
            "narrow": part([t for t in convs if t.output_shape[-1] <= narrow_channels]),
            "wide": part([t for t in convs if t.output_shape[-1] > narrow_channels]),
            "uncounted_share_of_time": sum(uncounted.values()),
            "uncounted_by_kind": dict(sorted(uncounted.items(), key=lambda item: -item[1]))}


def measure(model_name: str = "unet", sizes=(64, 128), batch: int = 32, repeats: int = 9,
            classes: int = 6) -> dict:
    """The figures of :func:`markdown_lines`: ``model_name`` at its small size, at each size,
    in inference and in training."""
    from dataclasses import asdict

    from segcourse import models

    figures = {"model": model_name, "batch": batch, "repeats": repeats, "sizes": {}}
    for size in sizes:
        model = models.build(model_name, classes, (size, size, 3), model_size="small")
        figures["sizes"][str(size)] = at = {}
        for mode in MODES:
            training = mode == "training"
            times = time_layers(model, batch, repeats, training=training)
            flops = sum(t.flops for t in times)
            if training:  # the whole network computes no gradient of its pictures
                flops -= next(t.forward_flops for t in times if t.flops)
            at[mode] = {"whole_seconds": whole_seconds(model, batch, repeats, training),
                        "flops": flops, "summary": summary(times),
                        "layers": [asdict(t) for t in times]}
            if training:
                at[mode]["batch_norm_kernels"] = batch_norm_kernels(model, batch, repeats)
    return figures


def markdown_lines(figures, conv_ceiling: float, beside: str) -> list[str]:
    """The report's section on where the time goes, from :func:`measure`'s figures, each rate
    read against ``conv_ceiling`` (GFLOP/s) and ``beside`` (the ceilings, as text)."""
    sizes = figures["sizes"]
    lines = [
        f"## Where the time goes, layer by layer ({figures['model']}, small)", "",
        f"Each layer alone in a tf.function on a batch of {figures['batch']} random inputs of "
        f"its input shape, median of {figures['repeats']} calls less the median of a traced "
        "call that does nothing (segcourse.layer_times): in inference its forward pass; in "
        "training its training-mode forward pass and the gradients of its weights and inputs "
        "for a random output gradient (3 × the forward FLOPs for a layer with weights). "
        "FLOP/byte: a layer's forward FLOPs over the least bytes its forward pass must move "
        "(its inputs and output once each, its weights; float32), the arithmetic intensity of "
        "the roofline model (Williams, Waterman & Patterson 2009); no memory bandwidth is "
        "measured here. The whole network in one tf.function is not the layers' sum: the graph "
        "optimizer can rewrite ops across layers, and a layer run alone finds its inputs in "
        "the cache. Keras 3's batch norm is separate moment and normalisation ops, not one "
        "fused kernel.", "",
        "| size | mode | whole network, ms | its GFLOP/s | of conv ceiling | layers alone, "
        "summed, ms | convolutions: share of time, GFLOP/s | ≤ 16 channels out: share of "
        "FLOPs, of time, GFLOP/s | wider: GFLOP/s | FLOP/byte: ≤ 16 channels, wider | no "
        "counted arithmetic: share of time | ceilings conv / matmul |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, at in sizes.items():
        forward = at["inference"]["summary"]
        for mode in MODES:
            done = at[mode]["summary"]
            whole = at[mode]["flops"] / at[mode]["whole_seconds"] / 1e9
            conv, narrow, wide = done["convolutions"], done["narrow"], done["wide"]
            kinds = ", ".join(f"{kind} {share:.0%}" for kind, share in
                              list(done["uncounted_by_kind"].items())[:3])
            lines.append(
                f"| {size}×{size} | {mode} | {at[mode]['whole_seconds'] * 1e3:.1f} | "
                f"{whole:.1f} | {whole / conv_ceiling:.3f} | "
                f"{done['layers_seconds'] * 1e3:.1f} | {conv['share_of_time']:.0%}, "
                f"{conv['gflops']:.0f} | {narrow['share_of_flops']:.0%}, "
                f"{narrow['share_of_time']:.0%}, {narrow['gflops']:.0f} | {wide['gflops']:.0f} | "
                f"{forward['narrow']['intensity']:.0f}, {forward['wide']['intensity']:.0f} | "
                f"{done['uncounted_share_of_time']:.0%} ({kinds}) | {beside} |")
    fused = [(size, at["training"]["summary"]["layers_seconds"],
              at["training"]["batch_norm_kernels"]) for size, at in sizes.items()
             if at["training"].get("batch_norm_kernels", {}).get("layers")]
    if fused:
        lines += ["", "Batch norm in training, as Keras 3 runs it and as TensorFlow's fused "
                  "kernel does (tf.compat.v1.nn.fused_batch_norm: the same transform and "
                  "moving-average updates, one op forward and one backward), each layer timed "
                  "both ways one after the other:", "",
                  "| size | batch-norm layers | Keras 3, summed ms | fused kernel, summed ms | "
                  "Keras ÷ fused | the layers' summed training time, Keras → fused | "
                  "ceilings conv / matmul |",
                  "|---|---|---|---|---|---|---|"]
        for size, layers_seconds, norms in fused:
            saved = norms["keras_seconds"] - norms["fused_seconds"]
            lines.append(
                f"| {size}×{size} | {norms['layers']} | {norms['keras_seconds'] * 1e3:.1f} | "
                f"{norms['fused_seconds'] * 1e3:.1f} | "
                f"{norms['keras_seconds'] / norms['fused_seconds']:.2f} | "
                f"{layers_seconds * 1e3:.1f} → {(layers_seconds - saved) * 1e3:.1f} ms "
                f"({saved / layers_seconds:.0%} shorter) | {beside} |")
    first = next(iter(sizes.values()))["inference"]
    names = [row["name"] for row in first["layers"] if row["flops"] > 0]
    largest = list(sizes)[-1]
    lines += ["", f"The convolutions one by one, GFLOP/s (FLOP/byte at {largest}×{largest}):", "",
              "| layer | channels out | FLOP/byte | " + " | ".join(
                  f"{size}×{size}: inference, training" for size in sizes)
              + " | ceilings conv / matmul |",
              "|---|---|---|" + "---|" * len(sizes) + "---|"]
    for name in names:
        cells, intensity, channels = [], None, None
        for at in sizes.values():
            rates = []
            for mode in MODES:
                row = next(row for row in at[mode]["layers"] if row["name"] == name)
                rates.append(f"{row['flops'] / row['seconds'] / 1e9:.0f}")
                if mode == "inference":
                    intensity = row["flops"] / row["bytes_moved"]
                    channels = row["output_shape"][-1]
            cells.append(", ".join(rates))
        lines.append(f"| {name} | {channels} | {intensity:.1f} | " + " | ".join(cells)
                     + f" | {beside} |")
    return [*lines, ""]
