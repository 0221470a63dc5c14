"""`segcourse grade` as a TA and a student use it: resume after Ctrl-C, shards and merge, the
student-side preview, clear refusals, the fallback without a sandbox, and a grader process
that never imports TensorFlow."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segcourse.grading.report import safe_name
from tests.grading.corpus import make

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "notebooks" / "06_metrics_losses.ipynb"
STUDENT = ROOT / "notebooks" / "student" / "06_metrics_losses.ipynb"
CASES = ["reference_solution", "untouched", "partial", "first_wrong", "infinite_loop",
         "invalid_json"]


def segcourse(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "segcourse", *map(str, args)],
                          capture_output=True, text=True, **kwargs)


def totals(out: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    with open(out / "grades.csv", newline="") as table:
        for row in csv.DictReader(table):
            found[row["student"]] = found.get(row["student"], 0) + int(row["points"])
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    expected = make(LAB, folder / "all")
    chosen = folder / "class"
    chosen.mkdir()
    for name in CASES:
        shutil.copy(folder / "all" / f"{name}.ipynb", chosen / f"{name}.ipynb")
    return chosen, {name: sum(expected[name]["points"].values()) for name in CASES}


def test_grade_help_is_quick_and_the_grader_never_imports_tensorflow():
    help_text = segcourse("grade", "--help")
    assert help_text.returncode == 0 and "--shard I/N" in help_text.stdout
    probe = ("import sys, segcourse.cli\n"
             "import segcourse.grading.batch, segcourse.grading.report\n"
             "try:\n    segcourse.cli.main(['grade', '--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tensorflow', 'keras', 'jax', 'torch')))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert imported.stdout.strip().splitlines()[-1] == "[]"


def test_interrupted_then_resumed_grades_each_submission_once(corpus, tmp_path):
    # The endless submission graded last (submissions go in id order): after two results it is
    # always still running, for --timeout's 10 s, whatever the machine's speed. Graded second,
    # as its own name sorts, the other four could finish before the interrupt (seen in CI).
    folder, expected = tmp_path / "class", {}
    shutil.copytree(corpus[0], folder)
    (folder / "infinite_loop.ipynb").rename(folder / "zz_infinite_loop.ipynb")
    for name, points in corpus[1].items():
        expected["zz_" + name if name == "infinite_loop" else name] = points
    out = tmp_path / "out"
    # SIGINT as a terminal delivers it: a job started in the background (`cmd &` in a script,
    # as CI may run this) inherits SIGINT ignored, and then Python never raises
    # KeyboardInterrupt: the grade ran to its end and returned 0 (seen in a local CI run).
    run = subprocess.Popen([sys.executable, "-m", "segcourse", "grade", str(LAB), str(folder),
                            "--out", str(out), "--timeout", "10", "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            break
        # Poll often: on a fast machine the rest of the class can finish within 0.2 s of the
        # second result, and then there is nothing left to interrupt (seen once in CI).
        time.sleep(0.01)
    assert zygotes_logging_into(out), "no grading process of this run was found to interrupt"
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "run the same command again" in err
    first = [json.loads(line) for line in results.read_text().splitlines()]
    assert 2 <= len(first) < len(CASES)
    again = segcourse("grade", LAB, folder, "--out", out, "--timeout", "10", "-q")
    assert again.returncode == 0, again.stderr
    assert f"{len(CASES) - len(first)} submission(s) graded now, {len(first)} already" \
        in again.stdout
    assert totals(out) == expected
    graded = [json.loads(line)["student"] for line in results.read_text().splitlines()]
    assert sorted(graded) == sorted(expected)  # nothing graded twice
    assert not zygotes_logging_into(out)


def zygotes_logging_into(out: Path) -> list[int]:
    """The grading processes (zygotes and their runs) whose stdout is a log under ``out``:
    this test's own, not those of tests running beside it (pytest -n) or of anyone else."""
    found = subprocess.run(["pgrep", "-f", "segcourse.grading.zygote"], capture_output=True,
                           text=True).stdout.split()
    ours = []
    for pid in map(int, found):
        try:
            log = Path(os.readlink(f"/proc/{pid}/fd/1"))
        except OSError:  # gone since pgrep saw it
            continue
        if log.is_relative_to(out):
            ours.append(pid)
    return ours


def test_shards_cover_the_class_once_and_merge_into_one_table(corpus, tmp_path):
    folder, expected = corpus
    shards = []
    for index in (1, 2, 3):
        out = tmp_path / f"shard-{index}"
        result = segcourse("grade", LAB, folder, "--out", out, "--shard", f"{index}/3", "-j", "2",
                           "--timeout", "10", "-q", "--seed", "11")
        assert result.returncode == 0, result.stderr
        shards.append(out)
    counts = [len(totals(out)) for out in shards]
    assert sum(counts) == len(CASES) and max(counts) - min(counts) <= 1
    merged = segcourse("grade", "merge", *shards, "--out", tmp_path / "all")
    assert merged.returncode == 0 and "warning" not in merged.stderr, merged.stderr
    partial = segcourse("grade", "merge", *shards[:2], "--out", tmp_path / "two")
    assert "shard(s) 3 of 3 are missing" in partial.stderr
    assert totals(tmp_path / "all") == expected
    assert len(list((tmp_path / "all" / "feedback").glob("*.md"))) == len(CASES)
    assert "## Checks" in (tmp_path / "all" / "summary.md").read_text()
    # a shard an older grader made is not mixed in: its points can differ
    results = shards[2] / "results.jsonl"
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    results.write_text("".join(json.dumps({**line, "grader": 0}) + "\n" for line in lines))
    mixed = segcourse("grade", "merge", *shards, "--out", tmp_path / "mixed")
    assert mixed.returncode == 2 and "different versions of the grader (0, 1" in mixed.stderr


def test_a_student_previews_their_own_notebook(tmp_path):
    mine = tmp_path / "mine.ipynb"
    shutil.copy(STUDENT, mine)
    result = segcourse("grade", LAB, mine, "-q")
    assert result.returncode == 0, result.stderr
    assert "mine (06_metrics_losses): 0 / 7 points" in result.stdout
    assert "check-ex1" in result.stdout and "not attempted" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["missing.ipynb", "x.ipynb"], "does not exist"),
    ([STUDENT, STUDENT], "is a student version"),
    ([LAB, "nowhere/"], "does not exist"),
])
def test_wrong_arguments_are_refused_with_the_fix(tmp_path, args, message):
    result = segcourse("grade", *args, "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize(("flags", "message"), [
    (["--timeout", "-5"], "--timeout -5.0: give a number of seconds above 0"),
    (["--timeout", "0"], "--timeout 0.0: give a number of seconds above 0"),
    (["--submission-timeout", "-1"], "--submission-timeout -1.0: give a number of seconds"),
    (["--timeout", "nan"], "--timeout nan: give a number of seconds above 0"),
    (["-j", "0"], "-j/--jobs 0: give a whole number of at least 1"),
    (["--seed", "-1"], "--seed -1: give a whole number of 0 or more"),
])
def test_limits_that_would_fail_every_student_are_refused(flags, message):
    # a negative time limit timed every student out: 0 points each, exit status 0
    result = segcourse("grade", LAB, STUDENT, *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_an_out_folder_that_cannot_be_made_is_refused(tmp_path):
    taken = tmp_path / "a_file"
    taken.write_text("")
    result = segcourse("grade", LAB, STUDENT, "--out", taken, "-q")
    assert result.returncode == 2, result.stderr
    assert f"--out {taken}: the grading folder cannot be made there" in result.stderr
    assert "Traceback" not in result.stderr
    merged = segcourse("grade", "merge", tmp_path, "--out", taken)
    assert merged.returncode == 2 and "cannot be made there" in merged.stderr, merged.stderr
    # --debug, as every other command takes it (it was an unrecognised argument here)
    for command in (["grade", LAB, STUDENT, "--out", taken, "-q", "--debug"],
                    ["--debug", "grade", "merge", tmp_path, "--out", taken]):
        debugged = segcourse(*command)
        assert debugged.returncode == 2 and "cannot be made there" in debugged.stderr
        assert "Traceback (most recent call last)" in debugged.stderr


def test_two_files_of_one_student_are_refused(tmp_path):
    for section in ("a", "b"):
        (tmp_path / section).mkdir()
        shutil.copy(STUDENT, tmp_path / section / "ada.ipynb")
    result = segcourse("grade", LAB, tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out")
    assert result.returncode == 2 and "share a student id" in result.stderr


def test_shard_numbers_are_checked():
    result = segcourse("grade", LAB, STUDENT, "--shard", "0/4")
    assert result.returncode == 2 and "I must be 1..N" in result.stderr


def test_without_the_sandbox_grades_agree_and_every_row_says_so(corpus, tmp_path):
    folder, expected = corpus
    small = tmp_path / "small"
    small.mkdir()
    for name in ("reference_solution", "first_wrong", "untouched"):
        shutil.copy(folder / f"{name}.ipynb", small)
    out = tmp_path / "out"
    result = segcourse("grade", LAB, small, "--out", out, "--no-sandbox", "-q")
    assert result.returncode == 0, result.stderr
    assert totals(out) == {k: expected[k] for k in ("reference_solution", "first_wrong",
                                                    "untouched")}
    with open(out / "grades.csv", newline="") as table:
        assert {row["sandbox"] for row in csv.DictReader(table)} == {"none"}
    assert "none (3)" in (out / "summary.md").read_text()


def test_a_resumed_folder_keeps_its_seed_and_refuses_another_reference(corpus, tmp_path):
    folder, _ = corpus
    out = tmp_path / "out"
    single = tmp_path / "one"
    single.mkdir()
    shutil.copy(folder / "reference_solution.ipynb", single)
    assert segcourse("grade", LAB, single, "--out", out, "-q").returncode == 0
    saved = json.loads((out / "reference.json").read_text())
    assert "expected" not in saved  # the expected values never touch the disk
    shutil.copy(folder / "untouched.ipynb", single)
    assert segcourse("grade", LAB, single, "--out", out, "-q").returncode == 0
    assert json.loads((out / "reference.json").read_text())["seed"] == saved["seed"]
    assert totals(out) == {"reference_solution": 7, "untouched": 0}
    # a record an older grader made is graded again (its points may differ today)
    from segcourse.grading.outcome import GRADER_VERSION

    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {line["grader"] for line in lines} == {GRADER_VERSION}
    for line in lines:
        if line["student"] == "reference_solution":
            del line["grader"]  # as results.jsonl lines written before versions were
    (out / "results.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = segcourse("grade", LAB, single, "--out", out, "-q")
    assert "1 submission(s) graded now, 1 already" in again.stdout, again.stderr
    assert totals(out) == {"reference_solution": 7, "untouched": 0}
    edited = tmp_path / "06_metrics_losses.ipynb"
    edited.write_text(LAB.read_text().replace("Lab 06", "Lab 06 (edited)"))
    shutil.copy(STUDENT, single / "late.ipynb")
    refused = segcourse("grade", edited, single, "--out", out, "-q")
    assert refused.returncode == 2 and "another version" in refused.stderr
    other_seed = segcourse("grade", LAB, single, "--out", out, "--seed", str(saved["seed"] + 1))
    assert other_seed.returncode == 2 and "--seed" in other_seed.stderr


def test_lms_exports_name_students_by_folder_and_totals_are_per_student(tmp_path):
    export = tmp_path / "export"
    for name in ("Ada Lovelace_101", "Alan Turing_102"):
        (export / name).mkdir(parents=True)
        shutil.copy(STUDENT, export / name / "06_metrics_losses.ipynb")
    refused = segcourse("grade", LAB, export, "--out", tmp_path / "out")
    assert refused.returncode == 2 and "--student-id folder" in refused.stderr
    out = tmp_path / "out"
    graded = segcourse("grade", LAB, export, "--out", out, "--student-id", "folder", "-q")
    assert graded.returncode == 0, graded.stderr
    with open(out / "totals.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    assert [(r["student"], r["points"], r["max_points"]) for r in rows] == [
        ("Ada Lovelace_101", "0", "7"), ("Alan Turing_102", "0", "7")]
    assert {p.name for p in (out / "feedback").glob("*.md")} == {
        f"{safe_name(name)}.md" for name in ("Ada Lovelace_101", "Alan Turing_102")}
    assert safe_name("a b") != safe_name("a_b")  # never one feedback file for two students
    wide = "\U00020000" * 62  # a legal 248-byte name: its feedback name must fit 255 bytes
    assert len((safe_name(wide) + ".md").encode()) <= 255 and safe_name(wide) != wide


def test_a_student_with_two_notebooks_in_an_export_is_flagged_and_the_class_graded(tmp_path):
    # an upload and its "-Copy1" in one student's folder refused the whole class
    export, out = tmp_path / "export", tmp_path / "out"
    for name in ("Ada_101", "Alan_102"):
        (export / name).mkdir(parents=True)
    shutil.copy(STUDENT, export / "Ada_101" / "lab.ipynb")
    shutil.copy(STUDENT, export / "Ada_101" / "lab-Copy1.ipynb")
    shutil.copy(LAB, export / "Alan_102" / "lab.ipynb")
    graded = segcourse("grade", LAB, export, "--out", out, "--student-id", "folder", "-q")
    assert graded.returncode == 0, graded.stderr
    assert totals(out) == {"Ada_101": 0, "Alan_102": 7}
    with open(out / "totals.csv", newline="") as table:
        flags = {row["student"]: row["flags"] for row in csv.DictReader(table)}
    assert flags == {"Ada_101": "several notebooks", "Alan_102": ""}
    feedback = (out / "feedback" / "Ada_101.md").read_text()
    assert "2 notebooks in" in feedback and "(lab-Copy1.ipynb, lab.ipynb)" in feedback
    (export / "Ada_101" / "lab-Copy1.ipynb").unlink()  # the student says which one counts
    again = segcourse("grade", LAB, export, "--out", out, "--student-id", "folder", "-q")
    assert "1 submission(s) graded now, 1 already" in again.stdout, again.stderr
    with open(out / "totals.csv", newline="") as table:
        assert {row["student"]: row["flags"] for row in csv.DictReader(table)}["Ada_101"] == ""


def test_students_by_folder_whether_the_export_or_its_files_are_named(tmp_path):
    from segcourse.grading.batch import GradingError, collect

    export, flat = tmp_path / "export", tmp_path / "flat"
    for path in (export / "Ada" / "lab.ipynb", export / "Ada" / "lab-Copy1.ipynb",
                 export / "Alan" / "lab.ipynb", flat / "a.ipynb", flat / "b.ipynb"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    expected = [("Ada", export / "Ada"), ("Alan", export / "Alan" / "lab.ipynb")]
    assert collect([export], "folder") == expected
    # a shell glob names the files: the same students (it refused the whole class)
    assert collect(sorted(export.glob("*/*.ipynb")), "folder") == expected
    # one flat folder of files is no student's folder: refused with the fix, not one student
    with pytest.raises(GradingError, match="every notebook given is in one folder"):
        collect(sorted(flat.glob("*.ipynb")), "folder")
    assert [k for k, _ in collect([flat], "folder")] == ["a", "b"]  # loose files: by name


def test_a_folder_of_one_lab_refuses_another_lab_even_with_nothing_left_to_grade(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "reference.json").write_text(json.dumps({"lab": "06_metrics_losses", "seed": 1,
                                                    "sha256": "x"}))
    other = ROOT / "notebooks" / "05_context.ipynb"
    refused = segcourse("grade", other, STUDENT, "--out", out)
    assert refused.returncode == 2 and "holds grades of 06_metrics_losses" in refused.stderr


def test_swapped_arguments_say_so(tmp_path):
    result = segcourse("grade", tmp_path, LAB, "--out", tmp_path / "out")
    assert result.returncode == 2 and "is a folder; give the reference notebook first" \
        in result.stderr


def test_odd_file_names_and_messages_never_stop_the_class(tmp_path):
    # an LMS export's Latin-1 name (undecodable in UTF-8), a legal 255-byte name, and a run
    # whose error message holds a lone surrogate: each is graded, and so is everyone after
    import nbformat

    from segcourse.labs.notebook import cell_info
    from tests.grading.corpus import _solutions, _with, _write

    reference = nbformat.read(LAB, as_version=4)
    first = cell_info(_solutions(reference)[0])["id"]
    submissions = tmp_path / "class"
    submissions.mkdir()
    latin1 = os.fsdecode(b"M\xfcller.ipynb")
    long_name = "a" * 249 + ".ipynb"
    for name in (latin1, long_name, "zz_last.ipynb"):
        shutil.copy(STUDENT, submissions / name)
    _write(_with(reference, {first: "raise ValueError('bad \\udcff value')\n"}),
           submissions / "surrogate_error.ipynb")
    out = tmp_path / "out"
    graded = segcourse("grade", LAB, submissions, "--out", out, "-q", "-j", "1")
    assert graded.returncode == 0, graded.stderr
    students = set(totals(out))
    assert students == {"M\\udcfcller", "a" * 249, "surrogate_error", "zz_last"}
    assert len(list((out / "feedback").glob("*.md"))) == 4
    reasons = (out / "grades.csv").read_text(encoding="utf-8")
    assert "bad \\udcff value" in reasons
    assert not list(out.glob(".*.tmp")) and not list((out / "feedback").glob(".*.tmp"))


def test_a_folder_that_cannot_be_written_stops_the_grading_with_the_reason(tmp_path,
                                                                          monkeypatch):
    from segcourse.grading import batch, report

    def full_disk(out, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_feedback", full_disk)
    submissions = tmp_path / "class"
    submissions.mkdir()
    for name in ("a", "b"):
        shutil.copy(STUDENT, submissions / f"{name}.ipynb")
    options = batch.Options(jobs=1, progress=False)
    with pytest.raises(batch.GradingError, match="writing the results of a into .* failed: "
                       "OSError: .*No space left on device"):
        batch.grade(LAB, [submissions], tmp_path / "out", options)


def test_each_grading_job_keeps_tensorflow_to_its_share_of_the_cores(monkeypatch, tmp_path):
    """-j 2: both zygotes (and so every run) get TensorFlow's pools sized for half the cores;
    a TA's own setting wins."""
    from segcourse.grading import batch
    from segcourse.labs.environment import thread_settings

    made = []
    monkeypatch.setattr(batch, "Zygote", lambda **kwargs: made.append(kwargs) or kwargs)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    options = batch.Options(jobs=2)
    for slot in range(2):
        batch._zygote(slot, 2, (), options, tmp_path)
    share = thread_settings(2)["TF_NUM_INTRAOP_THREADS"]
    assert [kwargs["env"]["TF_NUM_INTRAOP_THREADS"] for kwargs in made] == [share, share]
    assert [kwargs["env"]["TF_NUM_INTEROP_THREADS"] for kwargs in made] == ["3", "3"]
    assert [kwargs["log_path"] for kwargs in made] == [str(tmp_path / "worker-0.log"),
                                                       str(tmp_path / "worker-1.log")]
