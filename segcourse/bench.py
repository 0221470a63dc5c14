"""``segcourse bench``: speed figures, measured side by side in one run, as a readable report.

One run measures the machine's ceilings (a float32 matmul and a 3×3 convolution, GFLOP/s),
training and inference of the timed models (pictures/s, GFLOP/s and the fractions of both
ceilings) with XLA and op determinism on and off, the training input pipeline alone, where a
network's time goes layer by layer (:mod:`segcourse.layer_times`), and the update cost of
two mIoU metrics, and the dense CRF's mean-field inference per picture (:mod:`segcourse.crf`).
Medians over repeats; every absolute figure is printed beside
the ceilings it should be read against: timings vary with the machine, ratios much less.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

from segcourse.speed import in_fresh_process, matmul_gflops, median_seconds, training_tflop

SKIPPABLE = ("training", "xla", "determinism", "pipeline", "metrics", "layers", "crf")
#: The dense CRF's timings: (side, classes) per picture; median of CRF_CALLS calls each.
CRF_CASES, CRF_CALLS = ((64, 2), (128, 2), (128, 21)), 3
CONV = {"size": 64, "channels": 64, "batch": 16}  # the convolution ceiling's feature maps
METRIC_CALLS, METRIC_CLASSES = 20, 6


def conv_gflops(size=64, channels=64, batch=16, repeats=10) -> float:
    """The rate of a 3×3, ``channels``→``channels`` convolution (SAME padding) over ``batch``
    feature maps of ``size``×``size`` in a ``tf.function`` (GFLOP/s, median of ``repeats``);
    FLOPs = 2·H·W·Cin·Cout·9·batch."""
    import numpy as np
    import tensorflow as tf  # TensorFlow-only, as speed.matmul_gflops: what training runs on

    rng = np.random.default_rng(0)
    maps = tf.constant(rng.random((batch, size, size, channels), np.float32))
    kernel = tf.constant(rng.random((3, 3, channels, channels), np.float32))
    # One number back, so that each timing waits for the convolution (a GPU runs it
    # asynchronously) without copying the whole output.
    summed = tf.function(lambda: tf.reduce_sum(tf.nn.conv2d(maps, kernel, 1, "SAME")))

    def conv():
        return summed().numpy()

    conv()  # trace and warm up
    return 2 * size * size * channels * channels * 9 * batch / median_seconds(conv, repeats) / 1e9


def _load_average() -> float | None:
    """The 1-minute load average, where the system has one (not on Windows)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def ceilings() -> dict:
    """The machine's ceilings, GFLOP/s: :func:`segcourse.speed.matmul_gflops` (2048²) and
    :func:`conv_gflops` (:data:`CONV`)."""
    from tqdm.auto import tqdm

    probes = {"matmul_gflops": matmul_gflops, "conv_gflops": lambda: conv_gflops(**CONV)}
    return {name: round(probe(), 1)
            for name, probe in tqdm(probes.items(), desc="machine ceiling", leave=False)}


def _fit_rate(net, feed, steps, repeats, batch) -> float:
    """Pictures/s ``net`` trains on ``feed``: median of ``repeats`` epochs of ``steps`` steps,
    after a warm-up step (tracing, XLA compilation, a cache's filling)."""
    import keras

    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.began)

    net.fit(feed, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    net.fit(feed, steps_per_epoch=steps, epochs=repeats, verbose=0, shuffle=False,
            callbacks=[Timer()])
    return steps * batch / statistics.median(seconds)


def _training_variant(config, data, jit, deterministic, steps, repeats) -> dict:
    """One model trained with ``jit_compile=jit`` on segcourse's recipe and training pipeline:
    its MACs and pictures/s (fed by the pipeline; on segcourse train's setting also from one
    cached batch), and its inference pictures/s. A variant that Keras refuses or that fails
    says so instead."""
    import warnings

    import keras

    from segcourse import models
    from segcourse.analysis import summarize
    from segcourse.train import compile_model

    keras.utils.set_random_seed(config.seed)
    row = {"model": config.model, "jit_compile": jit}
    try:
        side = config.image_size
        net = models.build(config.model, data.num_classes, (side, side, 3),
                           model_size=config.model_size)
        row["macs_per_picture"] = summarize(net).macs
        compile_model(net, config, data.num_classes, data.train_steps, data.ignore_index)
        with warnings.catch_warnings():  # Keras' own note when it refuses XLA
            warnings.simplefilter("ignore", UserWarning)
            net.jit_compile = jit  # compile() resolved "auto" already; this sets it either way
        if net.jit_compile != jit:
            row["refused"] = ("Keras compiles nothing with XLA under op determinism"
                              if deterministic else f"Keras refuses XLA for {config.model}")
            return row
        row["pictures_per_s"] = _fit_rate(net, data.train.repeat(), steps, repeats,
                                          config.batch_size)
        if deterministic and not jit:
            row["cached_pictures_per_s"] = _fit_rate(net, data.train.take(1).cache().repeat(),
                                                     steps, repeats, config.batch_size)
        images = next(iter(data.train))[0]
        net.predict_on_batch(images)  # trace, compile
        row["inference_pictures_per_s"] = config.batch_size / median_seconds(
            lambda: net.predict_on_batch(images), steps * repeats)
    except Exception as error:  # a variant that fails is a finding, not the end of the run
        return {"model": row["model"], "jit_compile": row["jit_compile"],
                "error": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"}
    return row


def _shapes_config(size, batch, train_batches):
    """The CPU profile's training configuration on ``shapes``, ``train_batches`` batches an
    epoch and one batch each of validation and test."""
    from segcourse.train import TrainConfig

    return TrainConfig(image_size=size, batch_size=batch, train_count=train_batches * batch,
                       val_count=batch, test_count=batch).resolved()


def _training_child(deterministic, names, jit_settings, size, batch, steps, repeats):
    """Every (model, jit_compile) variant, with op determinism on (``deterministic``) or off;
    run in a fresh process: ``enable_op_determinism`` cannot be undone in a process."""
    from segcourse.labs.environment import prepare_tensorflow

    prepare_tensorflow()  # before TensorFlow is imported, as the CLI does (oneDNN on x86-64)
    import tensorflow as tf
    from tqdm.auto import tqdm

    from segcourse.data.sources import open_dataset

    if deterministic:
        tf.config.experimental.enable_op_determinism()
    elif os.environ.get("TF_DETERMINISTIC_OPS", "").lower() in ("1", "true"):
        raise ValueError("TF_DETERMINISTIC_OPS is set: op determinism cannot be measured off; "
                         "unset it, or run with --skip determinism.")
    config = _shapes_config(size, batch, steps)
    data = open_dataset(config)
    variants = [(name, jit) for name in names for jit in jit_settings]
    rows = []
    for name, jit in tqdm(variants, leave=False, unit="variant",
                          desc=f"training, op determinism {'on' if deterministic else 'off'}"):
        rows.append({**_training_variant(replace(config, model=name), data, jit,
                                         deterministic, steps, repeats),
                     "deterministic": deterministic})
    return rows


def pipeline_rate(size=64, batch=32, batches=16, repeats=3) -> float:
    """Pictures/s the training pipeline delivers without a model (median of ``repeats`` runs of
    ``batches`` batches): ``open_dataset``'s train split of the CPU profile on ``shapes``."""
    from segcourse.data.sources import open_dataset

    feed = iter(open_dataset(_shapes_config(size, batch, batches)).train.repeat())
    next(feed)  # the generator's start

    def run():
        for _ in range(batches):
            next(feed)

    return batches * batch / median_seconds(run, repeats)


def metric_costs(size=64, batch=32, classes=METRIC_CLASSES, calls=METRIC_CALLS) -> list[dict]:
    """``ConfusionMatrixMetric`` and ``keras.metrics.MeanIoU`` on the same scores (no ignore
    label): µs per ``update_state``, eager and in a ``tf.function`` (medians of ``calls``), and
    the mIoU each gives for one update."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm.auto import tqdm

    from segcourse.metrics import ConfusionMatrixMetric

    rng = np.random.default_rng(0)
    truth = rng.integers(0, classes, (batch, size, size)).astype(np.int32)
    scores = rng.normal(size=(batch, size, size, classes)).astype(np.float32) \
        + 1.5 * np.eye(classes, dtype=np.float32)[truth]  # right about half the time
    truth, scores = tf.constant(truth), tf.constant(scores)
    metrics = {"ConfusionMatrixMetric": ConfusionMatrixMetric(classes),
               "keras.metrics.MeanIoU": keras.metrics.MeanIoU(classes, sparse_y_pred=False)}
    rows = []
    with tqdm(total=2 * len(metrics), desc="metric updates", leave=False) as progress:
        for name, metric in metrics.items():
            metric.update_state(truth, scores)
            row = {"metric": name, "miou": float(metric.result())}
            for mode, update in (("eager", metric.update_state),
                                 ("tf_function", tf.function(metric.update_state))):
                update(truth, scores)  # trace, warm up
                row[f"{mode}_microseconds"] = round(
                    1e6 * median_seconds(lambda update=update: update(truth, scores), calls))
                progress.update()
            rows.append(row)
    return rows


def crf_costs(cases=CRF_CASES, calls=CRF_CALLS) -> list[dict]:
    """Seconds per picture of :func:`segcourse.crf.dense_crf` (its defaults: 5 mean-field
    iterations, the fast filters) on a made picture of each ``(side, classes)``: the median of
    ``calls``, after one call that warms up. The target: well under a second at 128 × 128."""
    import numpy as np
    from tqdm.auto import tqdm

    from segcourse.crf import dense_crf

    rows = []
    for side, classes in tqdm(cases, desc="dense CRF", leave=False):
        rng = np.random.default_rng(0)
        image = rng.random((side, side, 3))
        probabilities = rng.dirichlet(np.ones(classes), size=(side, side))
        dense_crf(image, probabilities)  # warm-up
        seconds = median_seconds(lambda image=image, scores=probabilities: dense_crf(image, scores),
                                 calls)
        rows.append({"side": side, "classes": classes, "calls": calls,
                     "seconds": round(seconds, 4)})
    return rows


def _with_rates(row, ceiling) -> dict:
    """``row`` with rounded rates, GFLOP/s and fractions of the ceilings (training: 3 forward
    passes per picture, inference: 1; speed.training_tflop's arithmetic)."""
    row = dict(row)
    for kind, key, pictures in (("training", "pictures_per_s", (1, 0)),
                                ("inference", "inference_pictures_per_s", (0, 1))):
        if key not in row:
            continue
        gflops = row[key] * training_tflop(row["macs_per_picture"], *pictures, 1) * 1e3
        row[f"{kind}_gflops"] = round(gflops, 1)
        row[f"{kind}_of_conv_ceiling"] = round(gflops / ceiling["conv_gflops"], 3)
        row[f"{kind}_of_matmul_ceiling"] = round(gflops / ceiling["matmul_gflops"], 3)
    for key in ("pictures_per_s", "cached_pictures_per_s", "inference_pictures_per_s"):
        if key in row:
            row[key] = round(row[key], 1)
    return row


def _input_bound(rows, pipeline) -> list[dict]:
    """Per model, on segcourse train's setting (no XLA, op determinism on): the rate fed by the
    pipeline, from one cached batch, and whether the pipeline limits training."""
    verdicts = []
    for row in rows:
        if "cached_pictures_per_s" not in row:
            continue
        fed, cached = row["pictures_per_s"], row["cached_pictures_per_s"]
        if pipeline < cached:
            verdict = "yes: the pipeline alone is slower than training from memory"
        elif fed < 0.9 * cached:
            verdict = (f"partly: fed by the pipeline, {1 - fed / cached:.0%} slower than from "
                       "memory (its generator shares the cores)")
        else:
            verdict = "no"
        verdicts.append({"model": row["model"], "pictures_per_s": fed,
                         "cached_pictures_per_s": cached,
                         "pipeline_over_training": round(pipeline / fed, 2),
                         "input_bound": verdict})
    return verdicts


def _table(header, rows) -> list[str]:
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header),
            *(f"| {' | '.join(str(cell) for cell in row)} |" for row in rows)]


def _training_cells(row) -> tuple[str, ...]:
    """A training row's pictures/s, GFLOP/s and fractions, or why it has none."""
    if "pictures_per_s" not in row:
        why = f"not run: {row['refused']}" if "refused" in row else f"failed: {row['error']}"
        return why, "–", "–", "–"
    return (f"{row['pictures_per_s']:.1f}", f"{row['training_gflops']:.1f}",
            f"{row['training_of_conv_ceiling']:.3f}", f"{row['training_of_matmul_ceiling']:.3f}")


def _on(flag) -> str:
    return "on" if flag else "off"


def markdown(figures) -> str:
    """The report's Markdown, from the figures :func:`report` writes as JSON."""
    machine, ceiling, settings = figures["machine"], figures["ceiling"], figures["settings"]
    both = f"{ceiling['conv_gflops']:.1f} / {ceiling['matmul_gflops']:.1f} GFLOP/s"
    beside = "ceilings conv / matmul"
    lines = [
        "# segcourse benchmark", "",
        f"{machine['platform']}, {machine['processor']}, {machine['cores']} cores, TensorFlow "
        f"{machine['tensorflow']}, Keras {machine['keras']}, oneDNN {machine['onednn']}; "
        f"{machine['date']}; {machine['wall_seconds']:.0f} s in all. Load average (1 min) "
        f"{machine['load_average_start']} at the start, {machine['load_average_end']} "
        "at the end: other work on the machine slows every figure. Medians over repeats; read "
        "each figure against the ceilings beside it.", "",
        "## Machine ceiling", "",
        "Each probe's median, at the start of the run and at its end; the higher of the two is "
        "the ceiling every other figure is read against. The probes are references, not hard "
        "limits: a model's own convolutions can run faster than the 64-channel probe.", "",
        *_table(("probe", "at the start, GFLOP/s", "at the end, GFLOP/s", "ceiling, GFLOP/s"), [
            (title, f"{ceiling['start'][key]:.1f}", f"{ceiling['end'][key]:.1f}",
             f"{ceiling[key]:.1f}") for title, key in (
                ("float32 matmul 2048² (speed.matmul_gflops)", "matmul_gflops"),
                (f"3×3 convolution {CONV['channels']}→{CONV['channels']} channels, "
                 f"{CONV['batch']} maps of {CONV['size']}×{CONV['size']}, tf.function",
                 "conv_gflops"))]), ""]
    rows = figures.get("training")
    if rows is not None:
        lines += [
            "## Training", "",
            f"Models {', '.join(settings['models'])}, small size (model_size small), "
            f"{settings['size']}×{settings['size']}, batch {settings['batch']}, segcourse's "
            "recipe (train.compile_model: masked cross-entropy, Adam, the mIoU metric) fed by "
            f"the training pipeline; median of {settings['repeats']} epochs of "
            f"{settings['steps']} steps after a warm-up step (tracing, XLA compilation). FLOPs "
            "per picture: 3 forward passes × 2 × MACs. Each op-determinism setting runs in its "
            "own fresh child process: enable_op_determinism() cannot be undone in a process, "
            "and two fresh processes start alike and leave the caller as it was. Keras "
            "compiles nothing with XLA while op determinism is on (model_supports_jit), so "
            "that pair is not run. segcourse train runs with op determinism on, hence without "
            "XLA.", "",
            *_table(("model", "jit_compile", "op determinism", "pictures/s", "GFLOP/s",
                     "of conv ceiling", "of matmul ceiling", beside),
                    [(r["model"], _on(r["jit_compile"]), _on(r["deterministic"]),
                      *_training_cells(r), both) for r in rows]),
            "",
            "## Inference", "",
            f"predict_on_batch on one batch of {settings['batch']}, median of "
            f"{settings['steps'] * settings['repeats']} calls; FLOPs per picture: 2 × MACs.", "",
            *_table(("model", "jit_compile", "op determinism", "pictures/s", "GFLOP/s",
                     "of conv ceiling", "of matmul ceiling", beside),
                    [(r["model"], _on(r["jit_compile"]), _on(r["deterministic"]),
                      f"{r['inference_pictures_per_s']:.1f}", f"{r['inference_gflops']:.1f}",
                      f"{r['inference_of_conv_ceiling']:.3f}",
                      f"{r['inference_of_matmul_ceiling']:.3f}", both)
                     for r in rows if "inference_pictures_per_s" in r]), ""]
    pipeline = figures.get("pipeline")
    if pipeline is not None:
        lines += [
            "## Input pipeline", "",
            "open_dataset's train split (shapes, CPU profile: new pictures every epoch, drawn "
            "while the previous batch trains), iterated without a model.", "",
            *_table(("what", "pictures/s", beside), [
                (f"input pipeline alone, {settings['size']}×{settings['size']}, batch "
                 f"{settings['batch']}", f"{pipeline['pictures_per_s']:.1f}", both)]), ""]
        if pipeline.get("input_bound"):
            lines += [
                "Is training input-bound? segcourse train's setting (no XLA, op determinism "
                "on), trained fed by the pipeline and from one cached batch:", "",
                *_table(("model", "fed by the pipeline, pictures/s",
                         "from one cached batch, pictures/s", "pipeline alone ÷ training",
                         "input-bound?", beside),
                        [(v["model"], f"{v['pictures_per_s']:.1f}",
                          f"{v['cached_pictures_per_s']:.1f}",
                          f"{v['pipeline_over_training']:.2f}", v["input_bound"], both)
                         for v in pipeline["input_bound"]]), ""]
    if figures.get("layers") is not None:
        from segcourse.layer_times import markdown_lines

        lines += markdown_lines(figures["layers"], ceiling["conv_gflops"], both)
    metrics = figures.get("metrics")
    if metrics is not None:
        first, second = metrics["updates"]
        lines += [
            "## Metric update cost", "",
            f"The same scores, batch {metrics['batch']}, {metrics['size']}×{metrics['size']}, "
            f"{metrics['classes']} classes, no ignore label: µs per update_state, median of "
            f"{metrics['calls']} calls, eager and inside a tf.function (as in a training step).",
            "",
            *_table(("metric", "eager µs", "tf.function µs", "mIoU", beside),
                    [(u["metric"], u["eager_microseconds"], u["tf_function_microseconds"],
                      f"{u['miou']:.6f}", both) for u in metrics["updates"]]), "",
            f"Same mIoU: {'yes' if metrics['same_miou'] else 'NO'} (difference "
            f"{abs(first['miou'] - second['miou']):.1e}).", ""]
    if figures.get("crf") is not None:
        lines += [
            "## Dense CRF", "",
            "segcourse.crf.dense_crf with its defaults (5 mean-field iterations, the separable "
            "spatial filter and the bilateral grid) on one made picture per row: seconds per "
            "picture, median of its calls after a warm-up call. The pictures are uniform "
            "noise, whose colours spread over the most cells of the bilateral grid: a real "
            "picture of the same size and classes takes at most about as long. The target: "
            "well under a second at 128×128; lab 10 runs it on 64×64 pictures.", "",
            *_table(("picture", "classes", "seconds per picture", beside),
                    [(f"{row['side']}×{row['side']}", row["classes"], f"{row['seconds']:.3f}",
                      both) for row in figures["crf"]]), ""]
    return "\n".join(lines)


def report(models_to_time=("unet", "fcn8s", "segnet"), out="benchmarks/report.md", *,
           size=64, batch=32, steps=3, repeats=3, skip=(), crf_cases=CRF_CASES) -> str:
    """Measure everything in one run (see the module's docstring), except the ``skip`` phases
    (:data:`SKIPPABLE`: ``xla`` and ``determinism`` keep segcourse train's setting only); write
    ``out`` (Markdown) and its ``.json`` beside it; return the Markdown. ``crf_cases``: the
    dense CRF's ``(side, classes)`` pictures (:func:`crf_costs`)."""
    from segcourse.labs.environment import prepare_tensorflow
    from segcourse.train import TrainConfig

    prepare_tensorflow()  # the child processes inherit it; here it counts if TF is not loaded
    unknown = set(skip) - set(SKIPPABLE)
    if unknown:
        raise ValueError(f"skip takes {', '.join(SKIPPABLE)}; got {', '.join(sorted(unknown))}.")
    for name, value in (("steps", steps), ("repeats", repeats)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number of at least 1; got {value!r}.")
    for name in models_to_time:  # before any timing: a typo should not cost a benchmark run
        TrainConfig(model=name, image_size=size, batch_size=batch).validate()
    started, load_start = time.perf_counter(), _load_average()
    first = ceilings()
    rows, pipeline, metrics, layers = [], None, None, None
    if "training" not in skip:
        jit_settings = (False,) if "xla" in skip else (False, True)
        for deterministic in (True,) if "determinism" in skip else (False, True):
            rows += in_fresh_process(_training_child, deterministic, list(models_to_time),
                              jit_settings, size, batch, steps, repeats)
    if "pipeline" not in skip:
        pipeline = {"pictures_per_s": round(pipeline_rate(size, batch, 4 * steps, repeats), 1)}
    if "metrics" not in skip:
        updates = metric_costs(size, batch)
        metrics = {"batch": batch, "size": size, "classes": METRIC_CLASSES,
                   "calls": METRIC_CALLS, "updates": updates,
                   "same_miou": abs(updates[0]["miou"] - updates[1]["miou"]) < 1e-6}
    if "layers" not in skip and models_to_time:
        from segcourse import layer_times

        layers = layer_times.measure("unet" if "unet" in models_to_time else models_to_time[0],
                                     (size, 2 * size), batch)
    crf = crf_costs(crf_cases) if "crf" not in skip else None
    last = ceilings()  # on a shared machine the load changes: the higher of two is the ceiling
    ceiling = {**{name: max(first[name], last[name]) for name in first},
               "start": first, "end": last, "conv": CONV}
    training = [_with_rates(row, ceiling) for row in rows] or None
    if pipeline and training:
        pipeline["input_bound"] = _input_bound(training, pipeline["pictures_per_s"])
    figures = {"machine": _machine(started, load_start),
               "settings": {"models": list(models_to_time), "size": size, "batch": batch,
                            "steps": steps, "repeats": repeats, "skip": sorted(skip)},
               "ceiling": ceiling, "training": training, "pipeline": pipeline,
               "layers": layers, "metrics": metrics, "crf": crf}
    figures = {key: value for key, value in figures.items() if value is not None}
    text = markdown(figures)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    return text


def _machine(started, load_start) -> dict:
    """What the figures were measured on, and how busy it was."""
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(terse=True),
            "processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "onednn": _on(os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_start": load_start,
            "load_average_end": _load_average(),
            "wall_seconds": round(time.perf_counter() - started, 1)}


ARCHITECTURES = (
    ("plain conv, receptive field 7", "plain", {}),
    ("U-Net without skips", "unet", {"skips": False}),
    ("U-Net", "unet", {}),
)


#: The budget ``benchmarks/architectures.md`` was measured with (the CPU profile's until its
#: recipe became 14 epochs of batch 16 at 3e-3): every architecture gets the same.
ARCHITECTURE_BUDGET = {"epochs": 20, "train_count": 4000, "batch_size": 32, "learning_rate": 5e-3,
                       "warmup_epochs": 0}


def architecture_report(epochs=None, train_count=None, out="benchmarks/architectures.md") -> str:
    """Same data, same budget (:data:`ARCHITECTURE_BUDGET`, unless given), three
    architectures: does the receptive field matter on ``shapes``, and do skips sharpen
    boundaries? Test mIoU overall and in the 2-pixel band around the true boundaries."""
    import tempfile

    from segcourse.data import shapes
    from segcourse.metrics import boundary_band, confusion_matrix, scores
    from segcourse.runs import load_run
    from segcourse.train import TrainConfig, predict_labels, train

    budget = {**ARCHITECTURE_BUDGET, **{k: v for k, v in (("epochs", epochs),
                                                          ("train_count", train_count)) if v}}
    images, masks = shapes.load("test", 1000, 64)
    band = boundary_band(masks, 2)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        for title, model, options in ARCHITECTURES:
            result = train(TrainConfig(model=model, **budget, model_options=options,
                                       out_dir=runs), verbose=0)
            net, _ = load_run(result.run_dir)
            predicted = predict_labels(net, images)
            on_band = scores(confusion_matrix(masks[band], predicted[band], shapes.NUM_CLASSES))
            rows.append((title, result.scores.miou, on_band.miou, result.seconds / 60))
    text = "\n".join([
        "# Does architecture matter on shapes?", "",
        f"{budget['epochs']} epochs × {budget['train_count']} fresh pictures, batch "
        f"{budget['batch_size']}, learning rate {budget['learning_rate']} (cosine decay), "
        "64×64, test split of 1000 pictures; boundary band = pixels within 2 of a label "
        "change.", "",
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


def _lab_paths(notebooks, command: str) -> list[Path]:
    """The notebooks named, or every available lab of the catalog; refused when one is missing."""
    from segcourse.labs.catalog import LABS

    paths = [Path(p) for p in notebooks] if notebooks else [
        Path(lab.notebook) for lab in LABS if lab.available]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"no notebook at {', '.join(missing)}: run segcourse bench {command} "
                         "from the repository's folder, or name the notebooks.")
    return paths


#: Added to each exercise cell of the student version for the run of its stubs: the grader
#: runs nothing for a notebook of untouched stubs (each check "not attempted"), so this is how
#: the stubs themselves, and the public checks after them, are seen to run and fail.
STUBS_RUN_MARK = "\n# (the stub, run as written)"


def _stubs_run(student):
    """``student`` with every exercise cell marked so that the grader runs its stub."""
    import copy

    from segcourse.labs.notebook import cell_info

    run = copy.deepcopy(student)
    for cell in run.cells:
        if cell.cell_type == "code" and cell_info(cell).get("role") == "solution":
            cell.source += STUBS_RUN_MARK
    return run


def lab_grades_report(notebooks=None, out="benchmarks/lab_grades.md", jobs: int = 2) -> str:
    """What ``segcourse grade`` gives each reference lab's own solutions (all its points are
    expected), its untouched student version (none: not attempted) and that version with its
    stubs run (none, and no graded public check passed: a student who runs the stubs sees each
    fail), sandboxed, one run per lab; ``notebooks`` defaults to every available lab. Writes
    ``out`` and its ``.json``; returns the Markdown."""
    import tempfile

    import nbformat
    from tqdm.auto import tqdm

    from segcourse.grading.batch import Options, grade
    from segcourse.grading.outcome import PUBLIC_NOT_RUN
    from segcourse.labs.notebook import read_notebook
    from segcourse.labs.student import student_notebook

    paths = _lab_paths(notebooks, "--lab-grades")
    rows = []
    for path in tqdm(paths, desc="labs graded", unit="lab"):
        with tempfile.TemporaryDirectory() as work:
            submissions = Path(work) / "submissions"
            submissions.mkdir()
            reference = read_notebook(path)
            student = student_notebook(reference)
            nbformat.write(reference, submissions / "reference.ipynb")
            nbformat.write(student, submissions / "untouched.ipynb")
            nbformat.write(_stubs_run(student), submissions / "stubs_run.ipynb")
            started = time.perf_counter()
            records = grade(path, [submissions], Path(work) / "out",
                            Options(jobs=jobs, progress=False))
            seconds = round(time.perf_counter() - started, 1)
        solved, untouched, stubs = (records[name] for name in
                                    ("reference", "untouched", "stubs_run"))
        rows.append({"notebook": path.as_posix(), "max_points": solved.max_points,
                     "reference": solved.points, "untouched": untouched.points,
                     "stubs_run": stubs.points, "checks": len(solved.feedback),
                     "reference_public_ok": sum(f.public_passed for f in solved.feedback),
                     "stubs_public_ok": sum(f.public_passed for f in stubs.feedback),
                     "stubs_public_ran": sum(f.public != PUBLIC_NOT_RUN for f in stubs.feedback),
                     "flags": sorted(set(solved.flags) | set(untouched.flags) | set(stubs.flags)),
                     "seconds": seconds})
    figures = {"platform": platform.platform(terse=True), "cores": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "labs": rows}
    wrong = [r["notebook"] for r in rows if r["reference"] != r["max_points"] or r["untouched"]
             or r["stubs_run"] or r["reference_public_ok"] != r["checks"]
             or r["stubs_public_ok"] or r["stubs_public_ran"] != r["checks"]]
    text = "\n".join([
        "# Each lab graded: its reference and its untouched student version", "",
        f"{figures['platform']}, {figures['cores']} cores, {figures['date']}. Each lab: "
        f"`segcourse grade <reference> <folder> -j {jobs}` (sandboxed) on three submissions: "
        "the reference notebook itself, its student version as `segcourse lab student` builds "
        "it (untouched: the grader runs nothing and gives each check 'not attempted'), and that "
        "version with one comment added to each exercise cell, so that the grader runs its "
        "stubs; seconds include the reference's own run. Public checks passed: of the graded "
        "checks, how many public check cells (what a student sees) ran without failing in the "
        "grading notebook.", "",
        *_table(("lab", "points", "reference's solutions", "untouched student version",
                 "its stubs run", "public checks passed (reference · stubs run)", "flags",
                 "seconds"),
                [(r["notebook"], str(r["max_points"]), str(r["reference"]), str(r["untouched"]),
                  str(r["stubs_run"]), f"{r['reference_public_ok']}/{r['checks']} · "
                  f"{r['stubs_public_ok']}/{r['checks']}",
                  ", ".join(r["flags"]) or "none", f"{r['seconds']:.1f}") for r in rows]),
        "", ("Every reference earns all its points and passes every public check; every "
             "untouched student version earns none, and with its stubs run none either, every "
             "graded public check run and failed."
             if not wrong else f"NOT AS EXPECTED: {', '.join(wrong)}."), ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    return text


def lab_times_report(notebooks=None, out="benchmarks/labs.md") -> str:
    """Each reference lab's wall time under nbval, as CI runs it (``pytest --nbval-lax`` with
    the repository's settings, from the current folder, one fresh process per lab), the machine's
    matmul ceiling before and after; ``notebooks`` defaults to every available lab of the
    catalog. Writes ``out`` and its ``.json``; returns the Markdown."""
    import subprocess
    import sys

    from tqdm.auto import tqdm

    paths = _lab_paths(notebooks, "--labs")
    ceiling_start, load_start = matmul_gflops(), _load_average()
    rows = []
    for path in tqdm(paths, desc="labs under nbval", unit="lab"):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "--nbval-lax", "--nbval-current-env", str(path)],
                              capture_output=True, text=True)
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        seconds = round(time.perf_counter() - started, 1)
        rows.append({"notebook": path.as_posix(), "seconds": seconds,
                     "passed": done.returncode == 0, "summary": summary.strip("= ")})
    figures = {"platform": platform.platform(terse=True), "cores": os.cpu_count(),
               "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": load_start,
               "load_average_end": _load_average(), "matmul_gflops_start": round(ceiling_start, 1),
               "matmul_gflops_end": round(matmul_gflops(), 1), "labs": rows}
    ceiling = f"{figures['matmul_gflops_start']:.0f} → {figures['matmul_gflops_end']:.0f} GFLOP/s"
    text = "\n".join([
        "# The labs under nbval", "",
        f"{figures['platform']}, {figures['cores']} cores, {figures['date']}; load average "
        f"{figures['load_average_start']} → {figures['load_average_end']}; float32 2048² matmul "
        f"{ceiling} (start → end). Each lab: `pytest <notebook>` with the repository's settings "
        "(--nbval-lax), in a fresh process, wall time including the kernel's start.", "",
        *_table(("lab", "seconds", "result", "matmul ceiling"),
                [(r["notebook"], f"{r['seconds']:.1f}", r["summary"], ceiling) for r in rows]),
        "", f"In all: {sum(r['seconds'] for r in rows):.0f} s.", ""])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    Path(out).with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")
    return text
