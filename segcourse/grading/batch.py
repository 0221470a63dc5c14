"""Grade a class: the reference run, N workers, results as each submission finishes, resume.

    grade(reference, [submission files or folders], out, jobs=2)

1. The reference's grading plan runs once, sandboxed like every submission, with a seed drawn
   for this grading folder; its hidden cells' values are the expected ones
   (``DIR/reference.json``: kept for a resumed run, out of every kernel's reach).
2. Each worker owns one zygote (a pre-imported, sandboxed process) and grades submissions from a
   shared queue; every finished submission is appended to ``DIR/results.jsonl`` (fsynced) and
   the tables and its feedback are rewritten, so Ctrl-C or a crash loses only the submissions
   in flight, and a re-run with the same DIR grades only what is left (or what changed).
"""

from __future__ import annotations

import json
import math
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from segcourse.grading import plan as plans
from segcourse.grading import report
from segcourse.grading.executor import StepResult, Zygote, ZygoteFailed, execute
from segcourse.grading.outcome import (
    GRADER_VERSION,
    Record,
    judge,
    printable,
    unreadable_record,
)
from segcourse.grading.submission import Submission, file_digest, load
from segcourse.labs.notebook import NotANotebook, read_notebook

DEFAULT_LIMITS = {"memory_bytes": 4 << 30, "processes": 256, "scratch_bytes": 256 << 20,
                  "open_files": 512, "cpu_seconds": 3600}


class GradingError(RuntimeError):
    """The grading run cannot go on; the message says what to fix."""


@dataclass
class Options:
    """How a class is graded: parallel jobs, time limits, the shard, how students are named."""
    jobs: int = 1
    timeout: float | None = None  # seconds per cell; None: from the reference's own times
    submission_timeout: float | None = None
    shard: tuple[int, int] | None = None  # (I, N), I from 1
    seed: int | None = None
    student_id: str = "stem"  # or "folder"
    sandbox: bool = True
    progress: bool = True
    limits: dict = field(default_factory=lambda: dict(DEFAULT_LIMITS))

    def __post_init__(self):
        # a time limit of 0 or below would time every student out: 0 points each, no error
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise GradingError(f"-j/--jobs {self.jobs!r}: give a whole number of at least 1 "
                               "(one per core is a good choice).")
        for flag, value in (("--timeout", self.timeout),
                            ("--submission-timeout", self.submission_timeout)):
            if value is not None and not (isinstance(value, (int, float))
                                          and math.isfinite(value) and value > 0):
                raise GradingError(f"{flag} {value!r}: give a number of seconds above 0, or "
                                   "leave it out for the default (from the reference's times).")
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int) or self.seed < 0):
            raise GradingError(f"--seed {self.seed!r}: give a whole number of 0 or more, or "
                               "leave it out to draw one.")


def collect(paths, student_id: str = "stem") -> list[tuple[str, Path]]:
    """Every ``.ipynb`` named or inside the named folders (recursively; checkpoints skipped),
    with its student id, sorted by id. The id is the file's stem, or with ``student_id="folder"``
    the name of the folder the file sits in under the named folder (an LMS export with one
    folder per student; a file named directly: the folder it is in). Two files with one id are
    refused, except several files in one student's folder of a class of several folders: that
    student's entry is then the folder itself, graded as "several notebooks"
    (:func:`several_notebooks`) while the rest of the class is graded."""
    if student_id not in ("stem", "folder"):
        raise GradingError(f"--student-id {student_id!r}: use stem or folder.")
    found: list[tuple[str, Path, Path | None]] = []  # (id, file, the student's folder)
    for root in map(Path, paths):
        if root.is_dir():
            for path in sorted(root.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in path.parts or path.is_dir():
                    continue  # a link is kept: it is graded as "not a regular file"
                inside = path.relative_to(root).parts
                by_folder = student_id == "folder" and len(inside) > 1
                found.append((printable(inside[0] if by_folder else path.stem), path,
                              root / inside[0] if by_folder else None))
        elif root.is_file() or root.is_symlink():
            by_folder = student_id == "folder"
            found.append((printable(root.parent.resolve().name if by_folder else root.stem),
                          root, root.parent if by_folder else None))
        else:
            raise GradingError(f"submission {root} does not exist; give .ipynb files or folders.")
    by_student: dict[str, list[tuple[Path, Path | None]]] = {}
    for identifier, path, folder in found:
        by_student.setdefault(identifier, []).append((path, folder))
    chosen, twice = {}, {}
    for identifier, entries in by_student.items():
        distinct = {os.path.realpath(path) for path, _ in entries}
        folders = {folder for _, folder in entries}
        if len(distinct) == 1:
            chosen[identifier] = entries[0][0]
        elif len(folders) == 1 and None not in folders and len(by_student) > 1:
            chosen[identifier] = folders.pop()  # one student's folder, several files
        else:
            twice[identifier] = [path for path, _ in entries]
    if twice:
        listing = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sorted(twice.items()))
        hint = ("use --student-id folder to name each student by their folder (one folder per "
                "student, as LMS exports have), or rename the files"
                if student_id == "stem" else
                "every notebook given is in one folder, so --student-id folder makes them one "
                "student: leave it out to name students by file" if len(by_student) == 1 else
                "rename the files or folders")
        raise GradingError(f"two submissions share a student id: {listing}. {hint}.")
    return sorted(chosen.items())


def several_notebooks(student: str, folder: Path) -> Submission:
    """A student whose folder holds more than one notebook (an upload and its "-Copy1"):
    nothing is graded, since which one counts is the student's to say; the record names them,
    and a resume grades the folder again once it changes."""
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)
    return Submission(student, folder, file_digest(folder), problem="several notebooks",
                      detail=f"{len(names)} notebooks in {folder} ({', '.join(names)}); which "
                             "one counts is the student's to say: keep that one alone in the "
                             "folder and grade again")


def take_shard(paths: list, shard: tuple[int, int] | None) -> list:
    """The submissions of shard I of N (every N-th path from the I-th), or all of them."""
    if shard is None:
        return paths
    index, count = shard
    if not 1 <= index <= count:
        raise GradingError(f"--shard {index}/{count}: shards are numbered 1..{count} "
                           "(with a Slurm array from 0, pass $((SLURM_ARRAY_TASK_ID + 1))).")
    return paths[index - 1::count]


def _git_root(path: Path) -> Path | None:
    try:
        root = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(root.stdout.strip()) if root.returncode == 0 and root.stdout.strip() else None


def hidden_paths(reference: Path, submissions: list[Path], extra: list[Path], out: Path
                 ) -> list[Path]:
    """What no kernel may see: the reference's folder and its git tree, the output folder,
    every submission's folder and the folders named on the command line."""
    hide = {reference.resolve().parent, out.resolve()}
    root = _git_root(reference.resolve().parent)
    if root:
        hide.add(root)
    hide.update(Path(os.path.realpath(p.parent)) for p in submissions)  # links not followed
    hide.update(Path(os.path.realpath(p)) for p in extra if p.is_dir())
    return sorted(hide)


def make_folder(out: Path) -> None:
    """Make the grading folder ``out``, or refuse with the reason (a file there, no access)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GradingError(f"--out {out}: the grading folder cannot be made there "
                           f"({error.strerror or error}); give a folder you can write to.") \
            from None


def _digest(path: Path) -> str:
    return file_digest(path)


def _timeouts(options: Options, seconds: list[float]) -> tuple[list[float], float]:
    if options.timeout is not None:
        per_step = [float(options.timeout)] * len(seconds)
    else:
        per_step = [min(900.0, max(20.0, 5 * s + 10)) for s in seconds]
    total = options.submission_timeout
    if total is None:
        total = max(180.0, 10 * sum(seconds), max(per_step) * 3)
    return per_step, total


def check_folder(out: Path, reference: Path, lab: str, seed: int | None) -> None:
    """Refuse a grading folder made for another reference, lab or seed (before any work)."""
    cache = out / "reference.json"
    if not cache.exists():
        return
    saved = json.loads(cache.read_text())
    if saved.get("lab", lab) != lab:
        raise GradingError(f"{out} holds grades of {saved['lab']}, not {lab}; give that lab's "
                           "reference, or a new --out folder.")
    if saved.get("sha256") != _digest(reference):
        raise GradingError(
            f"{out} was graded against another version of {reference.name}; grade into a new "
            "--out folder (or delete this one) so that every student is graded against the "
            "same reference.")
    if seed is not None and seed != saved.get("seed"):
        raise GradingError(f"{out} was graded with --seed {saved.get('seed')}, not {seed}; "
                           "leave --seed out to resume, or use a new --out folder.")


class ReferenceRun:
    """The expected values: the reference's hidden cells, run once per grading folder."""

    def __init__(self, expected: dict, seconds: list[float], seed: int, sandbox: str,
                 sha256: str):
        self.expected, self.seconds, self.seed = expected, seconds, seed
        self.sandbox, self.sha256 = sandbox, sha256

    @classmethod
    def load_or_run(cls, out: Path, reference: Path, plan: plans.Plan, zygote: Zygote,
                    options: Options) -> ReferenceRun:
        """Run the reference with this folder's seed (drawn on its first run). Only the seed
        is kept on disk, never the expected values: a resumed run computes them again."""
        cache = out / "reference.json"
        digest = _digest(reference)
        seed = options.seed
        if cache.exists():
            seed = json.loads(cache.read_text())["seed"]  # check_folder made sure it fits
        if seed is None:
            seed = secrets.randbelow(2 ** 31)
        results = execute(zygote, plan.sources(), seed, options.limits,
                          [900.0] * len(plan.steps), 3600.0)
        problems = _reference_problems(plan, results)
        if problems:
            raise GradingError("the reference does not pass its own grading run, so nothing can "
                               "be graded against it:\n  " + "\n  ".join(problems) +
                               f"\nRun `segcourse lab run {reference}` and fix the cells named.")
        expected = {c.check_id: results[c.hidden_step].values[0] for c in plan.checks}
        seconds = [r.seconds for r in results]
        cache.write_text(json.dumps({"reference": str(reference), "sha256": digest,
                                     "lab": lab_of(plan, reference), "seed": seed,
                                     "shard": list(options.shard or (1, 1)),
                                     "sandbox": zygote.sandbox, "seconds": seconds}))
        return cls(expected, seconds, seed, zygote.sandbox, digest)


def lab_of(plan: plans.Plan, reference: Path) -> str:
    """The lab's name in the results: the reference's own, else its file name."""
    return plan.lab or reference.stem


def _reference_problems(plan: plans.Plan, results: list[StepResult]) -> list[str]:
    problems = []
    for index, (step, result) in enumerate(zip(plan.steps, results, strict=True)):
        if step.kind in ("solution", "hidden", "setup") and result.status != "ok":
            problems.append(f"step {index} ({step.kind} {step.cell_id}): {result.status} "
                            f"{result.error or ''}".strip())
        if step.kind == "hidden" and result.status == "ok" and len(result.values) != 1:
            problems.append(f"hidden cell for {step.cell_id} submitted {len(result.values)} "
                            "times (once is right)")
    return problems


def grade_one(student: str, path: Path, reference_nb, reference_plan: plans.Plan,
              run: ReferenceRun, zygote: Zygote, options: Options) -> Record:
    """Grade one submission file on ``zygote``."""
    from segcourse.labs.notebook import lab_name

    lab = lab_name(reference_nb) or "lab"
    started = time.monotonic()
    submission: Submission = (several_notebooks(student, path) if path.is_dir()
                              else load(path, reference_nb, student))
    if submission.problem:
        record = unreadable_record(submission, reference_plan, lab, zygote.sandbox)
    else:
        solutions = {k: m.source for k, m in submission.matches.items()}
        plan = plans.build(reference_nb, solutions)
        results = None
        unbounded = zygote.unbounded_runs
        if any(m.source is not None and not m.stub for m in submission.matches.values()):
            per_step, total = _timeouts(options, run.seconds)
            results = execute(zygote, plan.sources(), run.seed, options.limits, per_step, total)
        sandbox = zygote.sandbox
        if zygote.unbounded_runs > unbounded and "no cgroup limits" not in sandbox:
            sandbox += " (no cgroup limits: processes and memory unbounded)"
        record = judge(submission, plan, reference_plan, run.expected, results, lab, sandbox,
                       time.monotonic() - started)
    record.reference, record.grader = run.sha256, GRADER_VERSION
    return record


def failed_record(student: str, path: Path, reference_plan: plans.Plan, lab: str,
                  run: ReferenceRun, error: BaseException, log: Path) -> Record:
    """A submission the grader itself failed on: no points, flagged, the batch goes on."""
    import traceback

    with open(log, "a", encoding="utf-8", errors="backslashreplace") as errors:
        errors.write(f"== {path}\n{''.join(traceback.format_exception(error))}\n")
    digest = file_digest(path)  # never raises
    submission = Submission(student, path, digest,
                            problem=f"grader error ({type(error).__name__}; see {log.name})")
    record = unreadable_record(submission, reference_plan, lab, run.sandbox)
    record.reference, record.grader = run.sha256, GRADER_VERSION
    return record


def grade(reference, submissions, out, options: Options | None = None,
          on_record=None) -> dict[str, Record]:
    """Grade every submission into ``out``; returns all records in the folder."""

    from segcourse.labs.notebook import lab_name

    options = options or Options()
    reference, out = Path(reference), Path(out)
    if reference.is_dir():
        raise GradingError(f"reference {reference} is a folder; give the reference notebook "
                           "first, then the submissions (segcourse grade REFERENCE "
                           "SUBMISSION... --out DIR).")
    if not reference.is_file():
        raise GradingError(f"reference {reference} does not exist; give a reference lab "
                           "notebook such as notebooks/06_metrics_losses.ipynb.")
    try:
        reference_nb = read_notebook(reference)
    except NotANotebook as error:
        raise GradingError(f"reference {error}") from None
    if reference_nb.metadata.get("segcourse", {}).get("version") == "student":
        raise GradingError(f"{reference} is a student version (it has no solutions and no "
                           "hidden checks); give the reference notebook, e.g. "
                           f"notebooks/{reference.name}.")
    try:
        reference_plan = plans.build(reference_nb)
    except ValueError as error:
        raise GradingError(f"{reference}: {error}") from None
    if not reference_plan.checks:
        raise GradingError(f"{reference} has no check that gives points: is it a student "
                           "version? Give the reference notebook.")
    lab = lab_name(reference_nb) or reference.stem
    check_folder(out, reference, lab, options.seed)
    class_ = take_shard(collect(submissions, options.student_id), options.shard)
    make_folder(out)
    records = report.load_records(out)
    todo = [(k, p) for k, p in class_ if k not in records or records[k].sha256 != _digest(p)
            or records[k].grader != GRADER_VERSION
            or any(flag.startswith("grader error") for flag in records[k].flags)]
    current = {k for k, _ in class_}
    hide = hidden_paths(reference, [p for _, p in class_], [Path(s) for s in submissions], out)
    jobs = max(1, min(options.jobs, len(todo))) if todo else 0
    zygotes: list[Zygote] = []
    lock = threading.Lock()
    try:
        if todo:
            if options.progress:
                print(f"grading {len(todo)} submission(s) of {lab} with {jobs} worker(s); "
                      "starting the workers and the reference run…", file=sys.stderr)
            try:
                zygotes = _start_zygotes(jobs, hide, options, out)
            except ZygoteFailed as error:
                raise GradingError(str(error)) from None
            run = ReferenceRun.load_or_run(out, reference, reference_plan, zygotes[0], options)
            _run_workers(todo, zygotes, hide, reference_nb, reference_plan, run, options, out,
                         records, lock, on_record, current)
    finally:
        for zygote in zygotes:
            zygote.close()
        with lock:
            shown = {k: v for k, v in records.items() if k in current}
            report.write_tables(out, shown)
            report.write_summary(out, shown, lab, pending=len(current - set(records)))
    left_out = sorted(set(records) - current)
    if left_out and options.progress:
        print(f"{len(left_out)} student(s) graded earlier in {out} are not among these "
              f"submissions and are left out of the tables: {', '.join(left_out[:5])}"
              f"{' …' if len(left_out) > 5 else ''}", file=sys.stderr)
    return {k: v for k, v in records.items() if k in current}


def _zygote(slot: int, count: int, hide, options: Options, out: Path) -> Zygote:
    """The zygote of worker ``slot`` of ``count``: its runs keep TensorFlow to their share of
    the cores (:func:`segcourse.labs.environment.thread_settings`) unless the TA set the pools."""
    from segcourse.labs.environment import thread_settings

    environ = {**thread_settings(count), **os.environ}
    return Zygote(hide=hide, sandbox=options.sandbox, env=environ,
                  log_path=str(out / f"worker-{slot}.log"))


def _start_zygotes(count: int, hide, options: Options, out: Path) -> list[Zygote]:
    """Start ``count`` zygotes from this (the main) thread, so that they live as long as it;
    they import TensorFlow side by side."""
    made = [_zygote(i, count, hide, options, out) for i in range(count)]
    try:
        for zygote in made:
            zygote.wait_ready()
    except ZygoteFailed as error:
        for zygote in made:
            zygote.close()
        raise GradingError(f"a grading process could not start: {error}") from None
    return made


def _run_workers(todo, zygotes, hide, reference_nb, reference_plan, run, options, out, records,
                 lock, on_record, current) -> None:
    from tqdm import tqdm

    from segcourse.labs.notebook import lab_name

    pending: queue.Queue = queue.Queue()
    for item in todo:
        pending.put(item)
    bar = tqdm(total=len(todo), unit="submission", desc="grading", disable=not options.progress)
    errors: list[BaseException] = []
    stop = threading.Event()

    ungraded: list[str] = []
    restarts = [0] * len(zygotes)

    def grade_item(slot: int, student: str, path: Path) -> Record | None:
        try:
            return grade_one(student, path, reference_nb, reference_plan, run, zygotes[slot],
                             options)
        except ZygoteFailed:  # its process died: a new one (it lives as long as this thread)
            restarts[slot] += 1
            zygotes[slot].close()
            if restarts[slot] > 3:
                raise
            zygotes[slot] = _zygote(slot, len(zygotes), hide, options, out).wait_ready()
            return grade_item(slot, student, path)
        except Exception as error:  # the grader's own failure on this file: flagged, go on
            if stop.is_set():  # interrupted: its run was killed under it, nothing failed
                return None
            return failed_record(student, path, reference_plan, lab_name(reference_nb) or "lab",
                                 run, error, out / "grader-errors.log")

    def work(slot: int):
        while not stop.is_set():
            try:
                student, path = pending.get_nowait()
            except queue.Empty:
                return
            try:
                record = grade_item(slot, student, path)
            except Exception:  # even the fallback failed: this one is reported, the rest go on
                ungraded.append(student)
                continue
            except BaseException as error:  # re-raised in the main thread
                errors.append(error)
                stop.set()
                return
            with lock:
                if stop.is_set() or record is None:  # interrupted: its grades are not real
                    return
                try:
                    # the record last: a student whose feedback could not be written has
                    # no record yet, so the next run grades them again
                    records[record.student] = record
                    report.write_feedback(out, record)
                    report.write_tables(out, {k: v for k, v in records.items() if k in current})
                    report.append_record(out, record)
                except Exception as error:  # the folder cannot be written: stop, and say why
                    errors.append(GradingError(
                        f"writing the results of {record.student} into {out} failed: "
                        f"{type(error).__name__}: {error}. Fix the cause, then run the same "
                        "command again: what was written is kept."))
                    stop.set()
                    return
                bar.update(1)
                bar.set_postfix_str(f"{record.student}: {record.points}/{record.max_points}")
                if on_record:
                    on_record(record)

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(len(zygotes))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for zygote in zygotes:
            zygote.close()
        raise
    finally:
        bar.close()
    if errors:
        raise errors[0]
    if ungraded:
        raise GradingError(f"{len(ungraded)} submission(s) could not be graded at all: "
                           f"{', '.join(sorted(ungraded))}; see {out / 'grader-errors.log'} and "
                           "the worker logs, then run the same command again.")


def merge(folders, out, warnings: list | None = None) -> dict[str, Record]:
    """Join the results of shard folders into ``out`` (tables, feedback, summary). What looks
    wrong but can be merged (different seeds, missing shards, a student in two folders) is
    appended to ``warnings``."""
    out = Path(out)
    make_folder(out)
    warnings = [] if warnings is None else warnings
    records: dict[str, Record] = {}
    labs, references, seeds, shards, graders = set(), set(), set(), set(), set()
    for folder in map(Path, folders):
        if not (folder / report.RESULTS).exists() and not (folder / "reference.json").exists():
            raise GradingError(f"{folder} holds no {report.RESULTS}: is it a grading folder?")
        if (folder / "reference.json").exists():
            saved = json.loads((folder / "reference.json").read_text())
            seeds.add(saved.get("seed"))
            shards.add(tuple(saved.get("shard", (1, 1))))
        for student, record in report.load_records(folder).items():
            if student in records and records[student].sha256 != record.sha256:
                warnings.append(f"{student} is in two folders with different files; the one "
                                f"from {folder} is kept")
            records[student] = record
            labs.add(record.lab)
            references.add(record.reference)
            graders.add(record.grader)
    if len(seeds) > 1:
        warnings.append(f"the shards drew different seeds ({', '.join(map(str, sorted(seeds)))}): "
                        "their students met different hidden inputs; pass one --seed to every "
                        "shard next time")
    counts = {n for _, n in shards}
    if len(counts) == 1:
        count = counts.pop()
        missing = sorted(set(range(1, count + 1)) - {i for i, _ in shards})
        if missing:
            warnings.append(f"shard(s) {', '.join(map(str, missing))} of {count} are missing: "
                            "their students are not in the merged tables")
    if len(labs) > 1:
        raise GradingError(f"the folders grade different labs ({', '.join(sorted(labs))}); "
                           "merge the shards of one lab at a time.")
    if len(references) > 1:
        raise GradingError("the folders were graded against different versions of the "
                           "reference notebook; grade every shard against the same one.")
    if len(graders) > 1:
        raise GradingError(f"the folders were graded by different versions of the grader "
                           f"({', '.join(map(str, sorted(graders)))}; this one is "
                           f"{GRADER_VERSION}), whose points can differ: run the grade "
                           "command again on each shard's folder (it grades again what an "
                           "older grader graded), then merge.")
    results = out / report.RESULTS
    results.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records.values()))
    for record in records.values():
        report.write_feedback(out, record)
    report.write_tables(out, records)
    report.write_summary(out, records, labs.pop() if labs else "lab")
    return records
