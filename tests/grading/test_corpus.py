"""The grader against its corpus (tests/grading/corpus.py) on labs 00, 02 and 06, through the
real command: exact points per student and check, the reasons, the flags, and nothing leaving
the sandbox (no file written, no connection made, no process left behind)."""

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.grading.corpus import make

ROOT = Path(__file__).resolve().parents[2]
LABS = ["00_welcome", "02_upsampling", "06_metrics_losses"]
NAMESPACES = sys.platform == "linux" and os.geteuid() == 0


class Listener:
    """A TCP server on 127.0.0.1 that records whether anyone connected (bounded, stops itself)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        deadline = time.monotonic() + 1800
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.server.close()


def _sleepers() -> int:
    found = subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True, text=True)
    return len(found.stdout.split())


@pytest.fixture(scope="module", params=LABS)
def graded(request, tmp_path_factory):
    if not NAMESPACES:
        pytest.skip("the corpus holds hostile submissions: grade it only where the sandbox "
                    "holds (root on Linux)")
    lab = request.param
    base = tmp_path_factory.mktemp(lab)
    probe = ROOT / f".probe-{lab}-{os.getpid()}"
    probe.mkdir()
    listener = Listener()
    submissions = base / "submissions"
    expected = make(ROOT / "notebooks" / f"{lab}.ipynb", submissions, probe=str(probe),
                    port=listener.port)
    out = base / "out"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "segcourse", "grade", str(ROOT / "notebooks" / f"{lab}.ipynb"),
         str(submissions), "--out", str(out), "-j", "2", "--timeout", "15", "-q"],
        capture_output=True, text=True, cwd=base)
    seconds = time.monotonic() - started
    listener.close()
    escaped = sorted(p.name for p in probe.iterdir())
    probe_files = escaped
    for path in probe.iterdir():
        path.unlink()
    probe.rmdir()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(out / "grades.csv", newline="") as table:
        rows = list(csv.DictReader(table))
    return {"lab": lab, "expected": expected, "rows": rows, "out": out, "seconds": seconds,
            "escaped": probe_files, "connections": listener.connections,
            "stdout": result.stdout}


def test_every_case_earns_exactly_its_points(graded):
    got = {}
    for row in graded["rows"]:
        got.setdefault(row["student"], {})[row["check"]] = int(row["points"])
    wrong = {name: (got.get(name), case["points"]) for name, case in graded["expected"].items()
             if got.get(name) != case["points"]}
    assert not wrong, f"{graded['lab']}: (got, expected) per case: {wrong}"


def test_reasons_say_what_happened(graded):
    for row in graded["rows"]:
        case = graded["expected"][row["student"]]
        if row["passed"] == "True":
            assert row["reason"] == ""
            continue
        assert row["reason"], row
        if case["reason"]:
            assert row["reason"] == case["reason"], row
    reasons = {(r["student"], r["reason"]) for r in graded["rows"]}
    assert any(s == "infinite_loop" and r.startswith("timeout") for s, r in reasons)
    assert any(s == "os_exit" and r.startswith("kernel died") for s, r in reasons)


def test_the_library_shortcut_is_flagged_not_penalized(graded):
    if graded["lab"] != "06_metrics_losses":
        pytest.skip("the shortcut case imports segcourse.metrics, which lab 06's check uses")
    flagged = [r for r in graded["rows"] if r["student"] == "library_shortcut" and r["flags"]]
    assert flagged and "segcourse.metrics.confusion_matrix" in flagged[0]["flags"]
    summary = (graded["out"] / "summary.md").read_text()
    assert "library_shortcut" in summary.split("## Flagged")[1]


@pytest.mark.skipif(not NAMESPACES, reason="the sandbox needs Linux namespaces (root)")
def test_nothing_leaves_the_sandbox(graded):
    assert graded["escaped"] == [], "a kernel wrote outside its scratch directory"
    assert graded["connections"] == 0, "a kernel opened a connection"
    assert _sleepers() == 0, "processes started by a submission outlived it"
    assert all(r["sandbox"].startswith("namespaces") for r in graded["rows"])
    feedback = (graded["out"] / "feedback" / "searches_disk.md").read_text()
    assert "BEGIN SOLUTION" not in feedback


def test_every_output_file_is_there_and_readable(graded):
    out = graded["out"]
    students = set(graded["expected"])
    assert {p.stem for p in (out / "feedback").glob("*.md")} == students
    rows = json.loads((out / "grades.json").read_text())
    assert len(rows) == len(graded["rows"])
    assert (out / "summary_points.png").stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "## Checks" in summary and "## Slowest submissions" in summary
    wrong = (out / "feedback" / "first_wrong.md").read_text()
    assert "wrong values" in wrong and "Public check" in wrong
