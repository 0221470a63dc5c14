"""The run folder that ``segcourse train`` writes: what it holds, its status, reading it back
and loading a model from it.

    runs/<model>-<dataset>-<time>/
        config.json      the configuration, resolved (profile defaults filled in)
        data.json        what the data was: classes, the split notes (how a flat folder was
                         split, a test split that is the val split) and each split's files
        status.json      running / interrupted / finished, epochs done, the best epoch so far
        model.keras      the best model (by validation mIoU), once training has finished
        checkpoints/     best.keras, written during training; state-epoch-<k>/, the training
                         state after the last finished epoch (weights, optimizer, random
                         state), kept until the run finishes so that ``resume`` can continue
        log.csv          one row per epoch, from 1 (loss, mIoU, validation loss and mIoU)
        metrics.json     test scores: pixel accuracy, mIoU, per-class IoU and Dice, confusion
        *.png            learning curves, predictions, confusion matrix, per-class IoU

An interrupted run (Ctrl-C, an error, a killed process) keeps its folder: ``status.json`` says
it is unfinished, :func:`open_run` (``segcourse evaluate RUN``) gives its best checkpoint so
far, and :func:`segcourse.train.resume` continues it. What writes the checkpoints:
:mod:`segcourse.checkpoints`.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segcourse.train import TrainConfig

RUN_CONTENTS = ("a run folder of `segcourse train` holds config.json, data.json, status.json, "
                "log.csv and checkpoints/best.keras, and model.keras and metrics.json once its "
                "training has finished")


# The run folder's records: status, log, data -------------------------------------------------

def timestamp() -> str:
    """Local time to the second, as status.json and log.csv record it."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def write_json(path: Path, data) -> None:
    """Replaced whole: a kill mid-write leaves the previous version, never half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2))
    os.replace(partial, path)


def finite_number(value) -> bool:
    """A real number that is neither a bool, ``nan`` nor infinite."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_out_dir(out_dir) -> None:
    """Refuse, before any work, a folder that cannot hold run folders (read-only, a file, no
    permission): it used to fail only once the data and the model were ready. Writes a
    probe folder in ``out_dir``, or in its nearest existing parent, and removes it."""
    import tempfile

    existing = Path(out_dir).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is a file, not a folder")
        tempfile.TemporaryDirectory(dir=existing, prefix=".segcourse-probe-").cleanup()
    except OSError as error:
        raise ValueError(f"cannot make a run folder in {out_dir} "
                         f"({error.strerror or type(error).__name__}): choose a folder you can "
                         "write to (--out, or out_dir in Python).") from None


def new_run_dir(config: TrainConfig) -> Path:
    """A new run folder, with its ``checkpoints/``, in ``config.out_dir``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(config.out_dir) / f"{config.model}-{config.dataset.split(':')[0]}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    (path / "checkpoints").mkdir(parents=True)
    return path


class RunStatus:
    """A run's ``status.json``: ``status`` (running, interrupted, finished), ``epochs_done``,
    the best epoch so far, the process that trains it; rewritten whole at every change."""

    def __init__(self, run_dir: Path, fields: dict):
        self.path = Path(run_dir) / "status.json"
        self.fields = dict(fields)

    def update(self, **changes) -> None:
        """Change these fields, stamp ``updated`` and rewrite status.json whole."""
        self.fields.update(changes, updated=timestamp())
        write_json(self.path, self.fields)


def read_status(run_dir) -> dict | None:
    """A run folder's ``status.json``, or ``None`` where there is none (a run made before runs
    recorded their status)."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not readable JSON ({error}); it is written whole by "
                         "`segcourse train`, so something else changed it. Restore it or "
                         "start a new run.") from None


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def still_training(status: dict) -> bool:
    """Whether the process that status.json says trains the run is alive on this machine."""
    return (status.get("status") == "running" and status.get("host") == socket.gethostname()
            and status.get("pid") != os.getpid() and _process_alive(status.get("pid")))


def not_a_run(path: Path) -> str:
    """Why ``path`` is no run folder, and what one holds: the text of the refusal."""
    if not path.exists():
        what = "it does not exist"
    elif not path.is_dir():
        what = "it is a file"
    else:
        names = sorted(p.name for p in path.iterdir())
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        what = (f"it holds {', '.join(names[:5])}{more} but no config.json" if names
                else "it is empty")
    return f"{path} is not a run folder ({what}): {RUN_CONTENTS}."


def _unfinished(run_dir: Path, status: dict | None) -> str:
    """How far an unfinished run got, in words."""
    if status is None:
        return "it has no model.keras: its training did not end"
    done, epochs = status.get("epochs_done", 0), status.get("epochs", "?")
    if status.get("status") == "interrupted":
        return f"interrupted after epoch {done} of {epochs} by {status.get('reason')}"
    if status.get("status") == "running":
        alive = (f", or it is still training in process {status.get('pid')}"
                 if still_training(status) else "")
        return (f"its status.json still says running, after epoch {done} of {epochs}: its "
                f"process was killed{alive}")
    return f"status {status.get('status')!r} after epoch {done} of {epochs}"


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_log(path: Path) -> list[dict]:
    """log.csv's rows as dicts of strings; none when the file is missing."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def log_history(rows: list[dict]) -> dict:
    """``log.csv``'s rows as Keras' ``History.history``: a list of numbers per column."""
    keys = [key for key in (rows[0] if rows else {}) if key != "epoch"]
    return {key: [_number(row[key]) for row in rows] for key in keys}


def best_in_log(rows: list[dict], monitor: str):
    """``(best value, its epoch)`` of the finite values of ``monitor``; ``(None, None)``."""
    values = [_number(row.get(monitor)) for row in rows]
    finite = [(value, epoch) for epoch, value in enumerate(values, 1) if math.isfinite(value)]
    if not finite:
        return None, None
    best = max(value for value, _ in finite)
    return best, next(epoch for value, epoch in finite if value == best)


def truncate_log(path: Path, epochs: int) -> list[dict]:
    """Keep ``log.csv``'s header and its first ``epochs`` rows (an epoch that ended after the
    last saved training state is trained again, so its row is written again)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        lines = list(csv.reader(handle))
    if epochs == 0:
        path.unlink()
        return []
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="") as handle:
        csv.writer(handle).writerows(lines[:1 + epochs])
    os.replace(partial, path)
    return [dict(zip(lines[0], row, strict=False)) for row in lines[1:1 + epochs]]


def test_split_name(data) -> str:
    """``"test"``, or ``"val (no test split)"`` for a dataset whose test split is its val split
    (a folder without a test split: its notes say so)."""
    files = data.split_files or {}
    if files.get("test") is not None and list(files["test"]) == list(files.get("val") or ()):
        return "val (no test split)"
    return "test"


def data_record(config: TrainConfig, data) -> dict:
    """What a run's ``data.json`` says about its data: the classes, which split the test
    scores come from, the dataset's notes and, for a folder, each split's files."""
    files = data.split_files
    return {"dataset": config.dataset, "classes": list(data.class_names),
            "ignore_index": int(data.ignore_index), "test_split": test_split_name(data),
            "notes": list(data.notes),
            "split_files": {name: list(f) for name, f in files.items()} if files else None}


def read_data_record(run_path) -> dict | None:
    """A run folder's ``data.json`` (:func:`data_record`), or ``None`` where there is none (a
    bare ``.keras`` file, a run from before data.json)."""
    path = Path(run_path) / "data.json"
    return json.loads(path.read_text()) if path.is_file() else None


def check_same_data(run_dir: Path, record: dict) -> None:
    """Refuse to resume a run whose data.json differs from the data described by ``record``."""
    before = read_data_record(run_dir)
    if before is None:
        return
    path, now = run_dir / "data.json", json.loads(json.dumps(record))
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if changed:
        raise ValueError(f"the data of {run_dir} changed since the run started (its "
                         f"{', '.join(changed)} differ from {path}): the remaining epochs would "
                         "train on other data than the first ones. Restore the data as it was, "
                         "or start a new run. Nothing was changed in the run folder.")


# Reading runs and models --------------------------------------------------------------------

@dataclass
class LoadedRun:
    """A model read back by ``load_run``, with the run's configuration when it has one."""
    model: object
    config: dict | None  # the run's config.json; None for a bare .keras file
    source: Path  # the .keras file read
    note: str | None = None  # set for an unfinished run: what it is and which checkpoint


def load_keras_file(path, compile: bool = True, what: str = "a .keras model file"):
    """A model from a ``.keras`` file; a ``ValueError`` that names the problem for a path that
    does not exist and for a file that is not a valid Keras archive (Keras itself says "File
    not found" for a file that exists but is not a zip)."""
    import zipfile

    import keras

    import segcourse.layers
    import segcourse.losses
    import segcourse.metrics  # noqa: F401  (register the custom layers, losses and metrics)

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist: give the path of {what}.")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not {what}.")
    problem = None
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            head = handle.read(16)
        problem = (f"a .keras file is a zip archive and this one is not ({path.stat().st_size} "
                   f"bytes, starting {head!r})")
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names, broken = archive.namelist(), archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            problem = f"its zip structure is broken ({error})"
        else:
            if "config.json" not in names:
                problem = "it is a zip archive without the config.json every Keras archive holds"
            elif broken:
                problem = f"its member {broken} is corrupt (it fails its CRC check)"
    if problem:
        raise ValueError(f"{path} is not a valid Keras archive: {problem}. It may be truncated "
                         "(a copy or a save that did not end) or not a model at all; save the "
                         "model again with model.save(...) or give another file.")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as error:
        raise ValueError(f"{path} is a Keras archive but cannot be loaded as a model "
                         f"({type(error).__name__}: {error}); it may come from another version "
                         "of Keras or hold layers this package does not define.") from error


def _best_epoch_of(run_dir: Path, status: dict | None) -> str:
    if status and status.get("best_epoch"):
        value = status.get("best_value")
        monitor = status.get("monitor", "val_miou")
        return f"epoch {status['best_epoch']}" + (f" ({monitor} {value:.4f})"
                                                  if finite_number(value) else "")
    monitor = (status or {}).get("monitor", "val_miou")
    _, epoch = best_in_log(read_log(run_dir / "log.csv"), monitor)
    return f"epoch {epoch} (by log.csv)" if epoch else "an epoch its log does not show"


# config.json files written before ``preset`` was renamed ``model_size``: their values.
_OLD_PRESETS = {"full": "paper", "cpu": "small"}


def read_config(run_dir) -> dict:
    """A run folder's ``config.json``, checked to be a training configuration of this segcourse
    (an object of known keys, each of its type); a ``ValueError`` names the file and the value."""
    from dataclasses import fields

    from segcourse.train import TrainConfig

    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not readable JSON ({error}); it is written by `segcourse "
                         "train`, so something else changed it. Restore it, or give the run's "
                         "model.keras itself.") from None
    known = {f.name: f.type for f in fields(TrainConfig)}
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a JSON {type(config).__name__}, not the object of "
                         f"training settings `segcourse train` writes ({', '.join(known)}).")
    if "preset" in config and "model_size" not in config:  # written before its rename (0.1)
        old = config.pop("preset")
        config["model_size"] = _OLD_PRESETS.get(old, old)
    problems = [f"unknown key {key!r}" for key in config if key not in known]
    for key, value in config.items():
        kind = known.get(key, "")
        expected = ("a string" if kind.startswith("str") else "a whole number" if "int" in kind
                    else "a number" if "float" in kind else "an object" if "dict" in kind else "")
        fits = ((value is None and "None" in kind) or
                (kind.startswith("str") and isinstance(value, str)) or
                ("int" in kind and isinstance(value, int) and not isinstance(value, bool)) or
                ("float" in kind and finite_number(value)) or
                ("dict" in kind and isinstance(value, dict)))
        if expected and not fits:
            problems.append(f"{key} is {value!r}, not {expected}")
    if problems:
        raise ValueError(f"{path} is not a training configuration of this segcourse: "
                         f"{'; '.join(problems)} (its keys: {', '.join(known)}). Restore the "
                         "file as `segcourse train` wrote it, or give the run's model.keras "
                         "itself.")
    return config


def check_segmenter(model, where) -> None:
    """A ``ValueError`` unless ``model`` takes RGB pictures ``(batch, H, W, 3)`` and gives class
    scores per pixel ``(batch, h, w, K)``: what evaluate and predict feed it and read back
    (another model failed deep inside Keras, with its call arguments dumped)."""
    try:  # a subclassed model that was never called has no shapes: nothing to check here
        inputs, outputs = model.input_shape, model.output_shape
    except (AttributeError, ValueError):
        return
    inputs = inputs[0] if isinstance(inputs, list) else inputs
    outputs = outputs[0] if isinstance(outputs, list) else outputs
    if len(inputs) != 4 or inputs[-1] not in (3, None):
        raise ValueError(f"{where}: the model takes inputs of shape {tuple(inputs)}, but "
                         "segcourse reads every picture as RGB, (batch, height, width, 3): "
                         "give a segmentation model trained on colour pictures (a greyscale "
                         "model needs its pictures given as RGB, e.g. built with 3 input "
                         "channels).")
    if len(outputs) != 4:
        raise ValueError(f"{where}: the model gives outputs of shape {tuple(outputs)}, not "
                         "class scores per pixel, (batch, height, width, classes): it is not a "
                         "segmentation model (a classifier? lab 01 shows how to make one "
                         "fully convolutional).")


def open_run(path, unfinished: bool = True) -> LoadedRun:
    """The model of a run folder or a ``.keras`` file, with the run's configuration. A
    finished run gives its ``model.keras``; an unfinished one (interrupted, killed) its best
    checkpoint so far, with a ``note`` that says so and which epoch it is from (or a
    ``ValueError`` where ``unfinished`` is false). A model that is not a segmentation model of
    RGB pictures is refused (:func:`check_segmenter`)."""
    run = _open_run(Path(path), unfinished)
    check_segmenter(run.model, run.source)
    return run


def _open_run(path: Path, unfinished: bool) -> LoadedRun:
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{not_a_run(path)} Give a run folder of `segcourse train` or a "
                             ".keras file.")
        config = read_config(path)
        status = read_status(path)
        finished = (status.get("status") == "finished" if status
                    else (path / "model.keras").is_file())
        if finished:
            if not (path / "model.keras").is_file():
                raise ValueError(f"{path} finished but its model.keras is missing (moved or "
                                 "deleted?): put it back, or give the .keras file itself.")
            return LoadedRun(load_keras_file(path / "model.keras"), config, path / "model.keras")
        state = _unfinished(path, status)
        best = path / "checkpoints" / "best.keras"
        if not unfinished:
            raise ValueError(f"{path} is not a finished run ({state}), so it has no model.keras "
                             f"yet. `segcourse train --resume {path}` finishes it; `segcourse "
                             "evaluate` scores its best checkpoint so far.")
        if not best.is_file():
            raise ValueError(f"{path} is not a finished run ({state}) and has no checkpoint yet "
                             "(checkpoints/best.keras is written when an epoch ends with a best "
                             f"validation score): there is nothing to score. `segcourse train "
                             f"--resume {path}` continues its training.")
        note = (f"{path} is not a finished run ({state}): scoring its best checkpoint so far, "
                f"checkpoints/best.keras, from {_best_epoch_of(path, status)}; "
                f"`segcourse train --resume {path}` finishes the run.")
        return LoadedRun(load_keras_file(best, what="a checkpoint"), config, best, note)
    if path.suffix == ".keras":
        return LoadedRun(load_keras_file(path), None, path)
    where = "it does not exist" if not path.exists() else "it is another kind of file"
    raise ValueError(f"{path} is neither a run folder (with config.json: {RUN_CONTENTS}) nor a "
                     f".keras model file: {where}.")


def load_run(path):
    """A trained model and its run configuration, from a finished run folder or a ``.keras``
    file."""
    run = open_run(path, unfinished=False)
    return run.model, run.config


def class_names_note(run_path, dataset: str, class_names) -> str | None:
    """What to say when a run folder's ``data.json`` names the classes it trained on otherwise
    than ``dataset`` names its own (same count: :func:`check_classes` passed); ``None`` when
    they agree or the run does not say. The scores pair the classes by number."""
    trained = list((read_data_record(run_path) or {}).get("classes") or [])
    if not trained or trained == list(class_names):
        return None
    return (f"the run trained on the classes {', '.join(trained)}; {dataset} names its "
            f"classes {', '.join(class_names)}. The scores pair them by number (the model's "
            "class 0 with the dataset's class 0, ...): if they are not the same classes in the "
            "same order, the scores compare unrelated classes.")


def check_unseen(run_path, dataset: str, split_files, split: str) -> None:
    """Refuse to score a run on a split of its own folder dataset that now holds pictures the
    run trained on (or, scoring the test split, chose its checkpoint on): a flat folder is split
    by a hash of the names and the picture count, so adding or removing pictures moves some
    between splits. Nothing is said for another dataset or a run without ``split_files``."""
    data = read_data_record(run_path) or {}
    before = data.get("split_files")
    if data.get("dataset") != dataset or not before or not split_files:
        return
    seen = {name: set(before.get(name) or ()) for name in ("train", "val")}
    if split != "test" or before.get("test") == before.get("val"):  # no test split of its own
        seen.pop("val")
    leaked = {name: sorted(set(split_files[split]) & files) for name, files in seen.items()}
    leaked = {name: files for name, files in leaked.items() if files}
    if leaked:
        said = "; ".join(f"{len(files)} from its {name} split (e.g. {', '.join(files[:3])})"
                         for name, files in leaked.items())
        raise ValueError(
            f"the {split} split of {dataset} now holds pictures the run did not hold out: {said}. "
            f"The folder changed since the run (its {Path(run_path) / 'data.json'} lists each "
            "split's files), so "
            "these scores would not be of unseen pictures. Restore the folder as it was, or "
            "give it train/, val/ and test/ folders that keep each picture in its split.")


def check_classes(model, num_classes: int, dataset: str, class_names=()) -> None:
    """A ``ValueError`` where the model's output classes are not the dataset's classes."""
    shape = model.output_shape
    shape = shape[0] if isinstance(shape, list) else shape
    outputs = shape[-1]
    if outputs != num_classes:
        names = f" ({', '.join(class_names)})" if class_names else ""
        raise ValueError(f"the model outputs {outputs} classes but the dataset {dataset} has "
                         f"{num_classes}{names}: its scores would compare unrelated class "
                         "numbers. Evaluate the model on a dataset with the classes it was "
                         f"trained on (--dataset), or a model trained on {dataset}.")
