"""A dry run of a lab's GPU profile on any machine: every cell, the GPU-only sections included,
in a minute or two on a CPU, so that an instructor finds the code that breaks before a class
meets it on Colab (``segcourse lab dry-run notebooks/07_train_diagnose.ipynb``).

A dry run checks that the code runs, not what it learns. In the kernel (``SEGCOURSE_DRY_RUN=1``;
the lab's ``setup()`` calls :func:`install`):

- ``PROFILE.name`` is ``"gpu"``, so the GPU-only sections run; ``PROFILE.pick`` gives the CPU
  profile's value and ``PROFILE.budget`` its dry-run value (:mod:`segcourse.labs.profiles`);
- every Keras ``fit`` trains at most :data:`DRY_EPOCHS` epochs (or ``validation_freq``'s) of
  :data:`DRY_STEPS` batches and validates on one batch (:func:`cut_fit_arguments`), eagerly
  (tracing a ResNet-50's training step costs more than the few steps it then takes; the same
  library code runs traced under nbval and in the unit tests), and
  :func:`segcourse.side_by_side.train_side_by_side` takes as many steps in all, eagerly too (the
  CPU sections' side-by-side runs would otherwise train as long as under nbval);
- Oxford-IIIT Pet is :data:`FAKE_PETS` generated examples a split, in tfds' feature format
  (:func:`fake_pets_examples`, served by ``tfds.testing.mock_data``): nothing is downloaded;
- ``weights="imagenet"`` builds the same ``keras.applications`` network with random weights.

Thresholds on trained scores (``check_at_least``) are not judged: they print that they were not,
and the rest of their cell runs. :func:`dry_run_notebook` lists them apart from the errors, which
are what a dry run is for; any other failed check is an error. So is a check cell whose printed
text differs from its stored output (a threshold's "not judged" line read as its "ok" line):
the checks print the same text in both profiles, which nbval holds a GPU runner to.

What a dry run cannot catch: what only the GPU profile's sizes, a GPU's memory and kernels, or
Colab's own TensorFlow and Keras bring out; and the lab's setup cell installs, on Colab, the
released segcourse it names, not this working tree.
"""

from __future__ import annotations

import inspect
import itertools
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segcourse.labs.checks import NOT_JUDGED
from segcourse.labs.notebook import CHECK_TAG
from segcourse.labs.profiles import DRY_RUN_VARIABLE, PROFILE_VARIABLE

DRY_EPOCHS = 2  # at most; or validation_freq's epochs, so that a fit still validates once
DRY_STEPS = 1  # batches an epoch: a second costs as much and proves nothing more
FAKE_PETS = 8  # examples a split: one batch of every Pets pipeline the labs make
FAKE_PET_SIDES = (32, 64)  # the least and the most pixels of a fake pet picture's side
GPU_SECTION = 'PROFILE.name == "gpu"'  # how a lab's cell opens a GPU-only section

_installed = []  # what install() keeps alive: the tfds mock's context, once installed


def _cut(value, count):
    """The first ``count`` rows of an array, or of each array in a dict, list or tuple."""
    if isinstance(value, dict):
        return {key: _cut(item, count) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cut(item, count) for item in value)
    return value if value is None or not hasattr(value, "shape") else value[:count]


def _is_dataset(value) -> bool:
    tf = sys.modules.get("tensorflow")  # a dataset exists only once TensorFlow is imported
    return tf is not None and isinstance(value, tf.data.Dataset)


def cut_fit_arguments(arguments: dict) -> dict:
    """``fit``'s arguments (by name, as ``inspect.signature(...).bind`` gives them) cut to a dry
    run: at most ``DRY_EPOCHS`` epochs (or an integer ``validation_freq``'s, so that it validates
    once) of ``DRY_STEPS`` batches, validation on one batch. Arrays keep their first batches, a
    ``tf.data.Dataset`` its first ``DRY_STEPS`` elements, anything else (a generator, a
    ``PyDataset``) gets ``steps_per_epoch``."""
    cut = dict(arguments)
    every = cut.get("validation_freq", 1)
    epochs = max(DRY_EPOCHS, every if isinstance(every, int) else 1)
    cut["epochs"] = min(cut.get("epochs", 1), cut.get("initial_epoch", 0) + epochs)
    x = cut.get("x")
    batch = cut.get("batch_size") or 32
    if _is_dataset(x):
        cut["x"] = x.take(DRY_STEPS)
        cut.pop("steps_per_epoch", None)
    elif hasattr(x, "shape") or isinstance(x, (dict, list, tuple)):
        for name in ("x", "y", "sample_weight"):
            cut[name] = _cut(cut.get(name), DRY_STEPS * batch)
    else:
        cut["steps_per_epoch"] = min(cut.get("steps_per_epoch") or DRY_STEPS, DRY_STEPS)
    validation = cut.get("validation_data")
    if _is_dataset(validation):
        cut["validation_data"] = validation.take(1)
        cut.pop("validation_steps", None)
    elif isinstance(validation, (list, tuple)):
        cut["validation_data"] = _cut(validation, cut.get("validation_batch_size") or batch)
    elif validation is not None:
        cut["validation_steps"] = 1
    return cut


def _cut_fit(fit):
    signature = inspect.signature(fit)

    def dry_run_fit(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        was = self.run_eagerly
        self.run_eagerly = True  # lab 08's dry run: 97 s traced, 25 s eager
        try:
            return fit(**cut_fit_arguments(bound.arguments))
        finally:
            self.run_eagerly = was  # predict and evaluate after it stay as the lab has them

    dry_run_fit.__doc__ = (f"Keras' fit, cut to a dry run ({cut_fit_arguments.__name__}), "
                           "eagerly.")
    return dry_run_fit


def _cut_side_by_side(train):
    """``train_side_by_side`` on the first ``DRY_EPOCHS * DRY_STEPS`` batches only: the steps a
    cut ``fit`` takes."""

    def dry_run_train_side_by_side(contenders, batches, *args, **kwargs):
        import tensorflow as tf

        first = list(itertools.islice(batches, DRY_EPOCHS * DRY_STEPS))
        was = tf.config.functions_run_eagerly()
        tf.config.run_functions_eagerly(True)  # as the cut fit: tracing costs more than 2 steps
        try:
            return train(contenders, first, *args, **kwargs)
        finally:
            tf.config.run_functions_eagerly(was)

    dry_run_train_side_by_side.__doc__ = (f"train_side_by_side, cut to a dry run "
                                          f"({DRY_EPOCHS * DRY_STEPS} batches).")
    return dry_run_train_side_by_side


def fake_pets_examples(builder=None, split="train", **_):
    """``FAKE_PETS`` examples of Oxford-IIIT Pet's tfds features, for ``tfds.testing.mock_data``'s
    ``as_dataset_fn``: a uint8 RGB ``image`` and a ``segmentation_mask`` trimap (1 pet, 2
    background, 3 the border band), each example of its own size (sides in ``FAKE_PET_SIDES``),
    as Pets' photographs are: an ellipse of a pet, brighter than its background, ringed by its
    border. Each split draws its own."""
    import tensorflow as tf

    rng = np.random.default_rng(zlib.crc32(str(split).encode()))  # "train[:90%]" != "train[90%:]"
    examples = []
    for number in range(FAKE_PETS):
        height, width = rng.integers(*FAKE_PET_SIDES, size=2, endpoint=True)
        rows, cols = np.mgrid[:height, :width]
        centre = rng.uniform(0.3, 0.7, 2) * (height, width)
        radii = rng.uniform(0.15, 0.3, 2) * (height, width)
        distance = np.hypot((rows - centre[0]) / radii[0], (cols - centre[1]) / radii[1])
        trimap = np.where(distance < 0.85, 1, np.where(distance < 1.15, 3, 2)).astype(np.uint8)
        image = rng.integers(0, 120, (height, width, 3)) + 100 * (trimap == 1)[..., None]
        head = np.concatenate([centre - radii, centre + radii]) / np.tile((height, width), 2)
        examples.append({"image": image.astype(np.uint8), "segmentation_mask": trimap[..., None],
                         "label": rng.integers(0, 37), "species": rng.integers(0, 2),
                         "file_name": f"fake_{number}.jpg",
                         "head_bbox": np.clip(head, 0, 1).astype(np.float32)})
    signature = {"image": tf.TensorSpec((None, None, 3), tf.uint8),
                 "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8),
                 "label": tf.TensorSpec((), tf.int64), "species": tf.TensorSpec((), tf.int64),
                 "file_name": tf.TensorSpec((), tf.string),
                 "head_bbox": tf.TensorSpec((4,), tf.float32)}
    return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=signature)


def _fake_pets():
    """Serve every tfds dataset from :func:`fake_pets_examples` (Pets is the labs' only one)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # no data extra: a Pets section fails as it would on Colab without it
        return
    from segcourse.data import pets

    mock = tfds.testing.mock_data(num_examples=FAKE_PETS, as_dataset_fn=fake_pets_examples)
    mock.__enter__()  # for the rest of the kernel's life: install() keeps it referenced
    pets.ensure_obtainable = lambda builder: None  # no download host to probe
    return mock


def _random_instead_of_imagenet():
    from segcourse.models import backbones, fcn

    original = backbones.keras_application

    def keras_application(name, weights, include_top=False):
        return original(name, None if weights == "imagenet" else weights, include_top)

    keras_application.__doc__ = "keras_application, with random weights for 'imagenet'."
    for module in (backbones, fcn):
        module.keras_application = keras_application


def install() -> None:
    """Turn this Python into a dry run (once): fit and side-by-side training cut short, fake
    Pets, random 'ImageNet'."""
    if _installed:
        return
    import keras

    from segcourse import side_by_side
    from segcourse.labs import checks

    checks.dry_run = True  # check_at_least prints, not raises: the rest of its cell still runs
    keras.Model.fit = _cut_fit(keras.Model.fit)
    # a lab imports it after its setup cell has installed this
    side_by_side.train_side_by_side = _cut_side_by_side(side_by_side.train_side_by_side)
    _installed.append(_fake_pets())  # were the mock's context collected, its patches would end
    _random_instead_of_imagenet()


_NOT_JUDGED_LINE = re.compile(rf"^(?P<what>.*): {NOT_JUDGED} \(\S+ against (?P<threshold>\S+)\)$")


def printed_lines(cell) -> list[str]:
    """What a code cell printed (its stdout), line by line."""
    return "".join("".join(out.get("text", "")) for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout"
                   ).splitlines()


def as_judged(line: str) -> str:
    """A threshold's "not judged" line as the "ok" line the same check prints when it passes."""
    match = _NOT_JUDGED_LINE.match(line)
    return f"{match['what']} ≥ {match['threshold']}: ok" if match else line


def first_difference(stored: list[str], printed: list[str]) -> str | None:
    """Where a check cell's printed lines (thresholds read as judged) leave its stored ones;
    ``None`` when they agree."""
    printed = [as_judged(line) for line in printed]
    if printed == stored:
        return None
    for number, (want, got) in enumerate(itertools.zip_longest(stored, printed), start=1):
        if want != got:
            return (f"line {number} of its output is {got!r} where the stored output says "
                    f"{want!r}: a check must print the same in both profiles")
    return None


def gpu_sections(nb) -> int:
    """How many code cells of ``nb`` open a GPU-only section (``if PROFILE.name == "gpu":``)."""
    return sum(cell.cell_type == "code" and GPU_SECTION in cell.source for cell in nb.cells)


def _where(ordinal: int, cell) -> str:
    """A code cell as an instructor finds it: its number among the code cells, its first line."""
    first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
    return f"code cell {ordinal} ({first[:60]}{'...' if len(first) > 60 else ''})"


@dataclass
class DryRun:
    """What a dry run of one notebook found: the ``errors`` it is for (where, exception name,
    message; an error after the first may follow from it) and the thresholds ``not_judged``
    on its meaningless scores (where, the check's line)."""

    path: Path
    seconds: float
    code_cells: int
    gpu_sections: int
    errors: list = field(default_factory=list)
    not_judged: list = field(default_factory=list)

    def summary(self) -> str:
        """The report as lines: ok or the count of errors, then each error and each threshold
        that was not judged, with the code cell it came from."""
        lines = [f"{self.path}: {'ok' if not self.errors else f'{len(self.errors)} error(s)'} "
                 f"({self.code_cells} code cells, GPU-only sections in {self.gpu_sections}; "
                 f"{self.seconds:.0f} s)"]
        lines += [f"  - {where}: {name}: {message}"
                  + (" (after an earlier error: it may follow from it)" if number else "")
                  for number, (where, name, message) in enumerate(self.errors)]
        lines += [f"  {where}: {said}" for where, said in self.not_judged]
        return "\n".join(lines)


def dry_run_notebook(path, timeout: int = 600) -> DryRun:
    """Run every cell of the notebook at ``path`` as a dry run of its GPU profile (it is not
    written back) and report each cell that raised: a check that fails is an error too, except
    a threshold (``check_at_least``), which a dry run does not judge, and so is a check cell
    (tagged ``nbval-check-output``) that prints other than its stored output. A cell that runs past
    ``timeout`` seconds, or a kernel that dies, ends the run there and is one more error."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from segcourse.labs.execute import execute_in_kernel
    from segcourse.labs.notebook import read_notebook

    path = Path(path)
    nb = read_notebook(path)
    stored = {id(cell): printed_lines(cell) for cell in nb.cells
              if cell.cell_type == "code" and CHECK_TAG in cell.get("metadata", {}).get("tags", [])}
    for cell in nb.cells:  # after a timeout, the cells never reached must not look run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    started = time.perf_counter()
    stopped = None
    try:
        execute_in_kernel(nb, path.parent, {DRY_RUN_VARIABLE: "1", PROFILE_VARIABLE: None},
                          timeout, allow_errors=True)
    except (CellTimeoutError, DeadKernelError) as error:
        stopped = (type(error).__name__, str(error).strip().splitlines()[0][:300])
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    report = DryRun(path, time.perf_counter() - started, len(code), gpu_sections(nb))
    last_run = "the first code cell"
    for ordinal, cell in enumerate(code, start=1):
        where = _where(ordinal, cell)
        if cell.get("execution_count") is not None or cell.get("outputs"):
            last_run = where
        raised = False
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raised = True
                report.errors.append((where, output["ename"], output["evalue"]))
            elif output.get("output_type") == "stream":
                text = "".join(output.get("text", ""))
                report.not_judged += [(where, line.strip()) for line in text.splitlines()
                                      if NOT_JUDGED in line]
        ran = cell.get("execution_count") is not None
        if id(cell) in stored and ran and not raised:
            differs = first_difference(stored[id(cell)], printed_lines(cell))
            if differs:
                report.errors.append((where, "CheckOutputDiffers", differs))
    if stopped is not None and report.errors and report.errors[-1][:2] == (
            last_run, "CheckOutputDiffers"):
        report.errors.pop()  # the cell the run stopped in printed only part of its text
    if stopped is not None:
        report.errors.append((f"at or after {last_run}", *stopped))
    return report
