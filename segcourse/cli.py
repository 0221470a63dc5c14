"""The ``segcourse`` command.

    segcourse info                       environment, profile and the labs
    segcourse train MODEL [options]      train on shapes (default), pets or folder:PATH
    segcourse evaluate RUN_OR_MODEL      scores on a dataset's test split
    segcourse predict MODEL IMAGES...    label maps for image files, written as PNGs
    segcourse bench                      speed figures, written to benchmarks/report.md
    segcourse analyze MODEL [options]    receptive fields and per-layer memory / params / MACs
    segcourse lab run NOTEBOOK...        execute labs in place, storing their outputs
    segcourse lab check NOTEBOOK...      check reference labs against the conventions
    segcourse lab student NOTEBOOK...    build the student versions (into notebooks/student)
    segcourse grade REFERENCE SUBMISSION... --out DIR [-j N] [--timeout S] [--shard I/N]
                                         grade submissions against a reference lab
    segcourse grade merge DIR... [--out DIR]
                                         join the folders of sharded grading runs
    segcourse --version                  the installed version

A user error (a bad value, a missing file) is one paragraph on stderr and exit status 2;
``--debug`` (or SEGCOURSE_DEBUG=1) prints the traceback too. Every option's ``--help`` line
states its default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# What the package raises for what a user gave it: a value it refuses, a file that is missing,
# already there or of the wrong kind. Reported as one paragraph, not as a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError)
DEBUG_HELP = "on an error, print the full traceback too (or set SEGCOURSE_DEBUG=1)"
PROFILE_DEFAULT = "the profile's (segcourse.train.PROFILE_DEFAULTS)"


class _HelpFormatter(argparse.HelpFormatter):
    """Help lines that end with the argument's default where it has one to state: not for a
    flag (its default is off), nor for ``None`` or an empty list, whose help says instead what
    happens without the option."""

    def _get_help_string(self, action):
        text, default = action.help or "", action.default
        if action.nargs == 0 or default is None or default is argparse.SUPPRESS \
                or default == [] or "%(default)" in text:
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    """An argument parser (and, through ``add_subparsers``, its subcommands' parsers) whose
    help states every default."""

    def __init__(self, *args, formatter_class=_HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def _info(args) -> int:
    from segcourse.labs import setup
    from segcourse.labs.catalog import LABS

    setup()
    print("\nLabs:")
    for lab in LABS:
        status = lab.notebook if lab.available else "(planned)"
        print(f"  {lab.number:02d}  {lab.title:<58} {status}")
    return 0


def _train(args) -> int:
    from segcourse import models
    from segcourse.labs.profiles import choose_profile
    from segcourse.train import TrainConfig, train

    if args.resume:
        return _resume(args)
    if args.model is None:
        args.usage_error("the following arguments are required: model (or --resume RUN)")
    dataset = args.dataset or "shapes"
    if args.train_count is not None and dataset != "shapes":
        raise ValueError(f"--train-count {args.train_count} sets how many pictures the shapes "
                         f"dataset draws; {dataset} trains on all the pictures of its train "
                         "split. Leave out --train-count, or choose the train split's "
                         "pictures.")
    profile = choose_profile(args.profile).name
    config = TrainConfig(model=args.model, dataset=dataset, profile=profile,
                         epochs=args.epochs, image_size=args.image_size,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         warmup_epochs=args.warmup_epochs,
                         seed=0 if args.seed is None else args.seed,
                         train_count=args.train_count, out_dir=args.out or "runs",
                         model_options=models.parse_options(args.model, args.option),
                         distribute=args.distribute or "auto")
    config.validate()  # every bad value named before any work
    print(f"training {config.model} on {config.dataset} ({profile} profile)")
    return _train_summary(lambda: train(config))


def _resume(args) -> int:
    from segcourse import models
    from segcourse.train import resumable, resume

    run = Path(args.resume)
    config = resumable(run)  # refuses a finished run, a folder that is no run, ...
    given = {"model": args.model, "dataset": args.dataset, "profile": args.profile,
             "epochs": args.epochs, "image_size": args.image_size,
             "batch_size": args.batch_size, "learning_rate": args.learning_rate,
             "warmup_epochs": args.warmup_epochs, "train_count": args.train_count,
             "seed": args.seed, "distribute": args.distribute}
    clashes = [f"{'the model' if name == 'model' else '--' + name.replace('_', '-')} {value} "
               f"(the run has {getattr(config, name)})"
               for name, value in given.items()
               if value is not None and value != getattr(config, name)]
    if args.option:
        options = models.parse_options(config.model, args.option)
        if any(key not in config.model_options or config.model_options[key] != value
               for key, value in options.items()):
            had = " ".join(f"--option {key}={value}"
                           for key, value in config.model_options.items())
            clashes.append(f"--option {' --option '.join(args.option)} (the run has "
                           f"{had or 'no options'})")
    if args.out is not None and Path(args.out).resolve() != run.resolve().parent:
        clashes.append(f"--out {args.out} (a resumed run stays in its folder, {run})")
    if clashes:
        raise ValueError(f"--resume continues {run} with the configuration it started with "
                         f"({run / 'config.json'}), and {'; '.join(clashes)} "
                         f"{'contradicts' if len(clashes) == 1 else 'contradict'} it. Leave "
                         f"{'that flag' if len(clashes) == 1 else 'those flags'} out to resume "
                         "the run, or start a new run (without --resume) to train with them.")
    print(f"training {config.model} on {config.dataset} ({config.profile} profile), resumed")
    return _train_summary(lambda: resume(run, config=config))


def _train_summary(session) -> int:
    """Run a training session (a new run or a resumed one) and print its test scores."""
    import tensorflow as tf  # TensorFlow-only: training runs on TensorFlow (tf.errors below)

    try:
        result = session()
    except tf.errors.ResourceExhaustedError as error:  # train() has said where the run stopped
        oom = next((line for line in error.message.splitlines() if "OOM" in line), "")
        oom = oom[oom.find("OOM"):][:160].strip() or "ResourceExhaustedError"
        raise ValueError(f"training ran out of memory ({oom}): choose a smaller --batch-size "
                         "or --image-size (or a narrower model) and start a new run.") from None
    except KeyboardInterrupt as interrupt:
        if getattr(interrupt, "run_dir", None) is None:  # else train() said where and how
            print("\ninterrupted before training began; nothing was written.",
                  file=sys.stderr)
        return 130
    print(f"\n{result.split} split, {'best checkpoint' if not result.notes else 'last epoch'} "
          f"({result.seconds / 60:.1f} min), {result.scored_at}:")
    print(result.scores.table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nrun folder: {result.run_dir}")
    return 0


def _analyze(args) -> int:
    from segcourse.analysis import field_table, summarize

    if args.model.endswith(".keras"):
        model = _saved_model_to_analyze(args)
    else:
        from segcourse import models

        size = 224 if args.image_size is None else args.image_size
        options = models.parse_options(args.model, args.option)
        model = models.build(args.model, 21 if args.num_classes is None else args.num_classes,
                             (size, size, 3), model_size=args.model_size or "paper", **options)
    if not args.summary_only:
        print(f"receptive fields of {model.name} (rows; in input pixels)\n")
        print(field_table(model))
    if not args.fields_only:
        summary = summarize(model)
        print(f"\nper-layer summary of {model.name}\n")
        print(summary.table())
        print(f"\n{summary}")
    return 0


def _saved_model_to_analyze(args):
    """The .keras model ``analyze`` reads, at ``--image-size`` where its input size is free;
    flags that only a registered model takes are refused (they used to be ignored)."""
    import keras

    from segcourse.runs import load_keras_file

    fixed = [f"{flag} {value}" for flag, value in (
        ("--num-classes", args.num_classes), ("--model-size", args.model_size),
        *(("--option", option) for option in args.option)) if value is not None]
    if fixed:
        raise ValueError(f"{' and '.join(fixed)} {'sets' if len(fixed) == 1 else 'set'} how a "
                         f"registered model is built; {args.model} is a saved model, built "
                         f"already: leave out {' '.join(fixed)}.")
    model = load_keras_file(args.model, compile=False,
                            what="a .keras model file (or a registered model's name)")
    height, width = tuple(model.inputs[0].shape)[1:3]
    if args.image_size is None:
        if (height is None or width is None) and not args.fields_only:
            raise ValueError(f"{args.model} takes pictures of any size; the per-layer summary "
                             "needs one: give it with --image-size, e.g. --image-size 224.")
        return model
    if all(side in (None, args.image_size) for side in (height, width)):
        channels = model.inputs[0].shape[-1]
        return keras.models.clone_model(  # the same layers on a fixed-size input
            model, input_tensors=keras.Input((args.image_size, args.image_size, channels)))
    shape = " × ".join("any" if side is None else str(side) for side in (height, width))
    raise ValueError(f"{args.model} takes {shape} pictures only, not --image-size "
                     f"{args.image_size} × {args.image_size}: leave out --image-size.")


def _evaluate(args) -> int:
    from segcourse.data.sources import open_dataset
    from segcourse.runs import (
        check_classes,
        check_unseen,
        class_names_note,
        open_run,
        test_split_name,
    )
    from segcourse.scoring import score_split
    from segcourse.train import TrainConfig

    if args.json:  # checked before the evaluation, which may take minutes
        target = Path(args.json)
        if target.is_dir() or not target.parent.is_dir():
            raise ValueError(f"--json {args.json}: "
                             + (f"{args.json} is a folder; give a file name, e.g. "
                                f"{target / 'scores.json'}." if target.is_dir() else
                                f"its folder {target.parent} does not exist; create it first "
                                "or give a path in an existing folder.")
                             + " Nothing was evaluated.")
        if target.exists() and not args.overwrite:
            raise FileExistsError(f"--json {args.json} already exists; evaluate does not replace "
                                  "files unasked. Give another file name, or pass --overwrite "
                                  "to replace it. Nothing was evaluated.")
    run = open_run(args.model)  # an unfinished run: its best checkpoint so far, with a note
    if run.note:
        print(f"note: {run.note}")
    model, run_config = run.model, run.config
    config = TrainConfig(**run_config) if run_config else TrainConfig()
    if args.dataset:
        config.dataset = args.dataset
    config.image_size = model.input_shape[1] or config.image_size
    data = open_dataset(config.resolved())
    check_classes(model, data.num_classes, config.dataset, data.class_names)
    check_unseen(args.model, config.dataset, data.split_files, args.split)
    other_names = class_names_note(args.model, config.dataset, data.class_names)
    if other_names:
        print(f"note: {other_names}")
    name = test_split_name(data) if args.split == "test" else "val"
    result, scored_at = score_split(model, data, args.split, at_input_size=args.input_size)
    print(f"{name} split of {config.dataset}, {scored_at}:")
    print(result.table())
    if args.json:
        Path(args.json).write_text(json.dumps(
            {**result.as_dict(), "split": name, "dataset": config.dataset,
             "scored_at": scored_at}, indent=2))
    return 0


def _predict(args) -> int:
    from segcourse.predict import output_paths, predict_files

    existing = {path for pair in output_paths(args.images, args.out) for path in pair
                if path.exists()}
    for path in predict_files(args.model, args.images, args.out, overwrite=args.overwrite):
        print(f"{'overwrote' if path in existing else 'wrote'} {path}")
    return 0


def _bench(args) -> int:
    from segcourse.bench import architecture_report, grading_report, report

    beside = Path(args.out).parent  # the other reports go in --out's folder
    if args.grading:
        print(grading_report(count=args.class_size, out=beside / "grading.md"))
        return 0
    if args.labs:
        from segcourse.bench import lab_times_report

        print(lab_times_report(out=beside / "labs.md"))
        return 0
    if args.lab_grades:
        from segcourse.bench import lab_grades_report

        text = lab_grades_report(out=beside / "lab_grades.md")
        print(text)
        return 1 if "NOT AS EXPECTED" in text else 0
    if args.time_to_accuracy:
        from segcourse import time_to_accuracy

        print(time_to_accuracy.report(out=beside / "time_to_accuracy.md",
                                      budget_minutes=args.budget_minutes))
        return 0
    print(report(args.models, out=args.out, steps=args.steps, repeats=args.repeats,
                 skip=args.skip))
    if args.architectures:
        print(architecture_report(out=beside / "architectures.md"))
    return 0


def _lab_run(args) -> int:
    from tqdm import tqdm

    from segcourse.labs.execute import run_notebook
    from segcourse.labs.profiles import choose_profile

    profile = choose_profile(args.profile)
    for path in tqdm(args.notebooks, desc="labs", unit="notebook"):
        tqdm.write(f"running {path} ({profile})")
        run_notebook(path, profile=profile.name, timeout=args.timeout)
    return 0


def _notebooks_to_execute(parser) -> None:
    """The arguments of the commands that execute notebooks: which ones, and a cell's limit."""
    parser.add_argument("notebooks", nargs="+", help="lab notebooks (.ipynb), run in order")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")


def _lab_dry_run(args) -> int:
    from tqdm import tqdm

    from segcourse.labs.dry_run import dry_run_notebook

    failed = 0
    for path in tqdm(args.notebooks, desc="dry runs", unit="notebook"):
        report = dry_run_notebook(path, timeout=args.timeout)
        tqdm.write(report.summary())
        failed += bool(report.errors)
    return 1 if failed else 0


def _lab_check(args) -> int:
    from segcourse.grading.plan import hidden_cell_problems, rebound_names
    from segcourse.labs.notebook import NotANotebook, read_notebook, reference_problems

    failed = 0
    for path in args.notebooks:  # every file is checked, whatever the ones before it held
        try:
            nb = read_notebook(path)
            if nb.metadata.get("segcourse", {}).get("version") == "student":
                problems = [f"a student version (built by `segcourse lab student`, without "
                            f"solutions and hidden checks): check its reference instead, e.g. "
                            f"notebooks/{Path(path).name}, and build this one again from it"]
            else:
                problems = reference_problems(nb, Path(path).stem)
            if not problems:  # a sound notebook: what the grader would read wrongly in it
                problems = rebound_names(nb) + hidden_cell_problems(nb)
        except (NotANotebook, OSError) as error:
            problems = [str(error) if isinstance(error, NotANotebook)
                        else f"cannot be read: {error.strerror or error}"]
        print(f"{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  - {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _lab_student(args) -> int:
    from segcourse.labs.student import build_student_versions

    for path in build_student_versions(args.notebooks, args.out):
        print(f"wrote {path}")
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (e.g. 2/4)") from None
    if count < 1 or not 1 <= index <= count:
        raise argparse.ArgumentTypeError(
            f"{text!r}: I must be 1..N (with a Slurm array from 0, pass "
            "$((SLURM_ARRAY_TASK_ID + 1))/N)")
    return index, count


def _grade(args) -> int:
    import tempfile

    from segcourse.grading.batch import GradingError, Options

    try:
        options = Options(jobs=args.jobs, timeout=args.timeout,
                          submission_timeout=args.submission_timeout, shard=args.shard,
                          seed=args.seed, student_id=args.student_id,
                          sandbox=not args.no_sandbox, progress=not args.quiet)
    except GradingError as error:
        return _grading_refusal(args, "grade", error)
    preview = None if args.out else tempfile.TemporaryDirectory(prefix="segcourse-grade-")
    out = args.out or preview.name
    try:
        return _grade_into(args, options, out)
    finally:
        if preview is not None:
            preview.cleanup()


def _grade_into(args, options, out) -> int:
    from segcourse.grading.batch import GradingError, grade
    from segcourse.grading.report import table

    graded_now = []
    try:
        records = grade(args.reference, args.submissions, out, options,
                        on_record=graded_now.append)
    except GradingError as error:
        return _grading_refusal(args, "grade", error)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(graded_now)} submission(s) graded in this run are saved in "
              f"{out}; run the same command again to grade the rest.", file=sys.stderr)
        return 130
    if len(records) == 1 or not args.out:
        for record in records.values():
            print(table(record) + "\n")
    if not args.out:
        return 0
    print(f"{len(graded_now)} submission(s) graded now, {len(records) - len(graded_now)} "
          f"already in {out}. Results: {Path(out) / 'totals.csv'} (per student), "
          f"{Path(out) / 'grades.csv'} (per check), {Path(out) / 'summary.md'}, feedback in "
          f"{Path(out) / 'feedback'}")
    return 0


def _grading_refusal(args, command: str, error) -> int:
    """A grading refusal: its sentence (and with --debug the traceback); exit status 2."""
    if args.debug:
        import traceback

        traceback.print_exc()
    print(f"segcourse {command}: {error}", file=sys.stderr)
    return 2


def _grade_merge(args) -> int:
    from segcourse.grading.batch import GradingError, merge

    out = args.out or str(Path(args.folders[0]).resolve().parent / "merged")
    warnings: list[str] = []
    try:
        records = merge(args.folders, out, warnings)
    except GradingError as error:
        return _grading_refusal(args, "grade merge", error)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"merged {len(records)} submission(s) from {len(args.folders)} folder(s) into {out}")
    return 0


def build_grade_parser() -> argparse.ArgumentParser:
    """The parser of ``segcourse grade REFERENCE SUBMISSION...``."""
    parser = _Parser(
        prog="segcourse grade",
        description="Grade lab submissions against a reference notebook: the reference's hidden "
                    "checks run on each submission's exercise cells in a sandbox, and their "
                    "values are compared with the reference solution's. Writes DIR/grades.csv, "
                    "grades.json, summary.md and feedback/STUDENT.md. `segcourse grade merge "
                    "DIR...` joins sharded runs.")
    parser.add_argument("reference", help="the reference lab notebook (notebooks/NN_name.ipynb)")
    parser.add_argument("submissions", nargs="+", help=".ipynb files or folders of them")
    parser.add_argument("--out", help="the grading folder (re-run with it to resume) "
                                      "(default: a temporary folder, results printed)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="submissions at once (one per core is a good choice)")
    parser.add_argument("--student-id", choices=("stem", "folder"), default="stem",
                        help="a student's id: the file name without .ipynb (stem), or the "
                             "folder it sits in under SUBMISSION (folder; LMS exports)")
    parser.add_argument("--timeout", type=float,
                        help="seconds per cell (default: 5x the reference's time + 10, ≥ 20)")
    parser.add_argument("--submission-timeout", type=float,
                        help="seconds per submission (default: 10x the reference's time, at "
                             "least 180 and three cell timeouts)")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="grade the I-th of N slices (default: all submissions)")
    parser.add_argument("--seed", type=int, help="the hidden inputs' seed (default: drawn)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="no namespaces even where allowed (rows say sandbox: none)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.set_defaults(run=_grade)
    return parser


def build_merge_parser() -> argparse.ArgumentParser:
    """The parser of ``segcourse grade merge DIR...``."""
    parser = _Parser(prog="segcourse grade merge",
                     description="Join the folders of sharded grading runs.")
    parser.add_argument("folders", nargs="+", help="grading folders (one per shard)")
    parser.add_argument("--out", help="where the joined results go (default: merged/ beside "
                                      "the first folder)")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.set_defaults(run=_grade_merge)
    return parser


def installed_version() -> str:
    """The installed distribution's version (what ``pip show segcourse`` says); from a source
    tree that was never installed, ``segcourse.__version__`` with a note."""
    from importlib import metadata

    try:
        return metadata.version("segcourse")
    except metadata.PackageNotFoundError:
        import segcourse

        return f"{segcourse.__version__} (not installed)"


class _Version(argparse.Action):
    """``--version``, looked up only when asked (it costs a scan of the installed packages)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"segcourse {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every other command (``grade`` has its own: :func:`main`)."""
    from segcourse.labs.profiles import PROFILE_RULE, PROFILES

    parser = _Parser(prog="segcourse", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    common = _Parser(add_help=False)  # --debug after the command, too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="environment, profile and the labs",
                        parents=[common]).set_defaults(run=_info)

    train = commands.add_parser("train", help="train a model; writes a run folder",
                                parents=[common])
    train.add_argument("model", nargs="?",
                       help="a registered model: unet, fcn8s, segnet, deeplabv3, ...")
    train.add_argument("--resume", metavar="RUN",
                       help="continue the interrupted run in the folder RUN from its last "
                            "finished epoch, with its own configuration (flags that differ from "
                            "it are refused); it ends as the uninterrupted run would have")
    train.add_argument("--dataset",
                       help="shapes, pets (the trimap border ignored), pets:class (the "
                            "border as a third class) or folder:PATH (default: shapes)")
    train.add_argument("--profile", choices=PROFILES,
                       help=f"the sizes to train with; default: {PROFILE_RULE}")
    train.add_argument("--epochs", type=int, help=f"passes over the data; default: "
                                                  f"{PROFILE_DEFAULT}")
    train.add_argument("--image-size", type=int,
                       help=f"side of the square pictures, in pixels; default: {PROFILE_DEFAULT}")
    train.add_argument("--batch-size", type=int,
                       help=f"pictures per training step; default: {PROFILE_DEFAULT}")
    train.add_argument("--learning-rate", type=float,
                       help=f"peak of a cosine decay; default: {PROFILE_DEFAULT}")
    train.add_argument("--warmup-epochs", type=float,
                       help=f"epochs of linear warm-up to the peak, from a tenth of it (0: "
                            f"none); default: {PROFILE_DEFAULT}")
    train.add_argument("--train-count", type=int,
                       help=f"shapes only: training pictures drawn; default: {PROFILE_DEFAULT}")
    train.add_argument("--seed", type=int,
                       help="seed of weights, data and batches (default: 0)")
    train.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="a model option, e.g. --option upsampling=bilinear (repeatable; "
                            "a wrong key's error lists the model's options, as does "
                            "segcourse.models.available())")
    train.add_argument("--distribute", choices=("auto", "mirrored", "none"),
                       help="auto: mirrored over several GPUs, else one device; mirrored: over "
                            "every GPU, or every CPU; none: one device (default: auto)")
    train.add_argument("--out", help="folder the run folders go in (default: runs)")
    train.set_defaults(run=_train, usage_error=train.error)

    evaluate = commands.add_parser("evaluate", help="score a trained model on a test split",
                                   parents=[common])
    evaluate.add_argument("model", help="a run folder or a .keras file (an unfinished run: its "
                                        "best checkpoint so far)")
    evaluate.add_argument("--dataset", help="the dataset to score on (default: the run's)")
    evaluate.add_argument("--split", choices=("test", "val"), default="test",
                          help="the split to score (a dataset without test: its val)")
    evaluate.add_argument("--input-size", action="store_true",
                          help="score the pictures and masks resized to the model's input size, "
                               "as in training, instead of at each picture's own size (the "
                               "benchmarks' way; pets and folder datasets)")
    evaluate.add_argument("--json", help="also write the scores to this JSON file")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace the --json file if it exists")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser("predict", help="label maps for images, as PNG files",
                                  parents=[common])
    predict.add_argument("model", help="a run folder or a .keras file")
    predict.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    predict.add_argument("--out", required=True,
                         help="folder for the PNGs: NAME_labels.png and NAME_overlay.png, NAME "
                              "the image's path below the images' common folder")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace results already in --out (default: refuse)")
    predict.set_defaults(run=_predict)

    from segcourse.bench import SKIPPABLE  # a light import: no TensorFlow

    bench = commands.add_parser("bench", help="speed figures as a readable report",
                                parents=[common])
    bench.add_argument("--models", nargs="+", default=["unet", "fcn8s", "segnet"],
                       help="registered models whose training throughput is timed")
    bench.add_argument("--out", default="benchmarks/report.md",
                       help="the speed report's Markdown file, its .json beside it; "
                            "--architectures and --grading write theirs in its folder")
    bench.add_argument("--steps", type=int, default=3,
                       help="training steps per timed epoch (of each model and variant)")
    bench.add_argument("--repeats", type=int, default=3,
                       help="timed epochs (and pipeline runs) whose median is reported")
    bench.add_argument("--skip", nargs="+", default=[], choices=SKIPPABLE, metavar="PHASE",
                       help=f"phases left out, of {', '.join(SKIPPABLE)}; xla and determinism "
                            "keep only segcourse train's setting (no XLA, op determinism on)")
    bench.add_argument("--architectures", action="store_true",
                       help="also train plain conv / U-Net without skips / U-Net on the CPU "
                            "profile's budget (about 20 minutes on 2 cores): architectures.md "
                            "beside --out")
    bench.add_argument("--grading", action="store_true",
                       help="only the grading throughput: a class of lab-06 submissions graded "
                            "with -j 1 and -j 2 (grading.md and .json beside --out)")
    bench.add_argument("--class-size", type=int, default=100,
                       help="--grading: submissions in the made class")
    bench.add_argument("--labs", action="store_true",
                       help="only each reference lab's wall time under nbval, as CI runs it "
                            "(labs.md beside --out); run from the repository's folder")
    bench.add_argument("--lab-grades", action="store_true",
                       help="only what segcourse grade gives each reference lab's solutions (all "
                            "its points) and its untouched student version (none): "
                            "lab_grades.md beside --out; run from the repository's folder")
    bench.add_argument("--time-to-accuracy", action="store_true",
                       help="only the time to validation mIoU 0.85 and 0.90 on shapes of the "
                            "course's recipe, the keras-io U-Net-like example's and that model "
                            "with the course's recipe (time_to_accuracy.md beside --out; up to "
                            "three times --budget-minutes)")
    bench.add_argument("--budget-minutes", type=float, default=30.0,
                       help="--time-to-accuracy: the most minutes each recipe trains")
    bench.set_defaults(run=_bench)

    analyze = commands.add_parser("analyze", help="receptive fields and per-layer summary",
                                  parents=[common])
    analyze.add_argument("model", help="a registered model or a .keras file")
    analyze.add_argument("--image-size", type=int,
                         help="side of the square input, in pixels (default 224; a .keras "
                              "model: its own size, or this one if it takes any size)")
    analyze.add_argument("--num-classes", type=int,
                         help="classes of the built model (a registered model; default 21)")
    analyze.add_argument("--model-size", choices=("paper", "small"),
                         help="paper (default): the paper's widths; small: the model's small "
                              "configuration (a registered model)")
    analyze.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                         help="a model option, e.g. --option depth=3 (repeatable)")
    only = analyze.add_mutually_exclusive_group()
    only.add_argument("--fields-only", action="store_true",
                      help="only the receptive fields")
    only.add_argument("--summary-only", action="store_true",
                      help="only the per-layer summary")
    analyze.set_defaults(run=_analyze)

    lab = commands.add_parser("lab", help="work on the lab notebooks", parents=[common])
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    run = lab_commands.add_parser("run", help="execute notebooks in place, storing outputs",
                              parents=[common])
    _notebooks_to_execute(run)
    run.add_argument("--profile", choices=PROFILES,
                     help=f"the profile the labs run in; default: {PROFILE_RULE}")
    run.set_defaults(run=_lab_run)
    dry_run = lab_commands.add_parser(
        "dry-run", parents=[common],
        help="run notebooks' GPU profile on this machine, every training cut to a few steps and "
             "Pets faked, to find the cells that fail (nothing is written)",
        description="Run every cell of each notebook in its GPU profile on this machine, to find "
                    "the cells that fail before a class does on Colab. What both profiles run "
                    "runs at the CPU profile's sizes; every Keras fit trains 2 epochs of 1 "
                    "batch; Oxford-IIIT Pet is 8 generated examples a split in tfds' format; "
                    "ImageNet weights are random. Thresholds on trained scores are not judged; "
                    "any other failed check is an error. It proves that the code runs, not what "
                    "it learns, and cannot catch what only a GPU, the GPU profile's sizes or "
                    "Colab's own versions bring out. Exit status 0 when no cell raised, 1 when "
                    "one did; the notebooks are not written.")
    _notebooks_to_execute(dry_run)
    dry_run.set_defaults(run=_lab_dry_run)
    check = lab_commands.add_parser("check", help="check reference notebooks' conventions",
                                    parents=[common])
    check.add_argument("notebooks", nargs="+", help="reference lab notebooks (.ipynb)")
    check.set_defaults(run=_lab_check)
    student = lab_commands.add_parser("student", help="build student versions of reference labs",
                                      parents=[common])
    student.add_argument("notebooks", nargs="+", help="reference lab notebooks (.ipynb)")
    student.add_argument("--out", default="notebooks/student", help="folder for the results")
    student.set_defaults(run=_lab_student)
    commands.add_parser("grade", help="grade submissions (segcourse grade --help)", add_help=False)
    return parser


def main(argv=None) -> int:
    """Run the command ``argv`` (default: the command line); returns its exit status."""
    from segcourse.labs.environment import prepare_tensorflow

    prepare_tensorflow()
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("SEGCOURSE_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    if argv[:1] == ["--debug"]:
        debug, argv = True, argv[1:]
    if argv[:1] == ["grade"]:  # its own parsers: `grade merge DIR...` and `grade REF SUB...`
        rest = argv[1:]
        parser = build_merge_parser() if rest[:1] == ["merge"] else build_grade_parser()
        args = parser.parse_args(rest[1:] if rest[:1] == ["merge"] else rest)
        args.debug = args.debug or debug
        return args.run(args)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        debug = debug or getattr(args, "debug", False)
        if debug:
            import traceback

            traceback.print_exc()
        print(_error_paragraph(args, error, hint=not debug), file=sys.stderr)
        return 2


def _error_paragraph(args, error, hint=True) -> str:
    """``segcourse train: <what was wrong, which value, what to do>`` on one paragraph."""
    command = " ".join(filter(None, (args.command, getattr(args, "lab_command", None))))
    if isinstance(error, OSError) and error.strerror and error.filename:  # Python's own wording
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error).strip() or type(error).__name__
    if hint:
        separator = "\n" if "\n" in text else " "  # a listed message keeps its lines
        text += f"{separator}(--debug shows the traceback)"
    return f"segcourse {command}: {text}"


if __name__ == "__main__":
    sys.exit(main())
