"""Run a grading notebook's steps in a sandboxed process, surviving whatever the steps do.

Grader side (no TensorFlow here). A :class:`Zygote` is one pre-imported, sandboxed process per
worker (:mod:`segcourse.grading.zygote`); :func:`execute` runs a list of steps there with a
timeout per step and one per submission. A step that times out or kills its process is recorded
(``timeout`` / ``kernel died``) and the run starts again in a fresh process that re-runs the
earlier steps, skips the failed one and goes on, so one exercise's crash costs only that
exercise.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from segcourse.grading.sandbox import cgroups_joined, remove_cgroups, run_name, sweep_cgroups

RESULT_LIMIT = 64 << 20  # bytes of events one run may send: beyond that it is cut off
LINE_LIMIT = 8 << 20  # bytes of one event line: a longer one is dropped unread
PAYLOADS_KEPT = 2  # per step: one is right, a second is already one too many
TAMPERED = ("the run wrote events of its own to the grader's channel (out of order), so none of "
            "its results can be trusted")


#: The only variables a run inherits (a TA's tokens and paths stay out of students' reach).
ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONPATH",
               "SEGCOURSE_PROFILE", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL",
               "TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
               "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
               "OPENBLAS_L2_SIZE", "CUDA_VISIBLE_DEVICES", "XLA_FLAGS")


def run_environment(environ) -> dict:
    """The zygote's (and so every run's) environment: :data:`ENVIRONMENT` and ``LC_*`` only."""
    kept = {k: v for k, v in environ.items() if k in ENVIRONMENT or k.startswith("LC_")}
    kept.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    kept.update({"MPLBACKEND": "Agg", "HOME": tempfile.gettempdir()})
    return kept


class ZygoteFailed(RuntimeError):
    """The pre-imported grading process could not start."""


@dataclass
class StepResult:
    """What happened to one step. ``status``: ok, error, timeout, died, skipped, tampered."""

    status: str
    error: str | None = None
    error_type: str | None = None
    output: str = ""
    seconds: float = 0.0
    values: list = field(default_factory=list)


class Zygote:
    """One pre-imported grading process (see :mod:`segcourse.grading.zygote`). It dies with
    the thread that made it: make it in a thread that outlives its use (the main one)."""

    def __init__(self, hide=(), sandbox: bool = True, env: dict | None = None,
                 log_path: str | None = None, start_timeout: float = 300):
        ours, theirs = socket.socketpair()
        plan = json.dumps({"hide": [os.path.abspath(p) for p in hide], "sandbox": sandbox})
        environment = run_environment(os.environ if env is None else env)
        self._log = open(log_path or os.devnull, "ab")  # noqa: SIM115  (lives with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segcourse.grading.zygote", "--control-fd",
             str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=self._log, env=environment, start_new_session=True)
        theirs.close()
        ours.sendall(plan.encode() + b"\n")
        self._control = ours
        self._lines = self._control.makefile("r")
        self._lock = threading.Lock()
        self._start_timeout, self._log_path = start_timeout, log_path
        self.sandbox = None
        self.unbounded_runs = 0  # runs that were not in their pids and memory cgroups

    def wait_ready(self) -> Zygote:
        """Wait until the process has imported everything and entered its sandbox."""
        if self.sandbox is not None:
            return self
        start_timeout, log_path = self._start_timeout, self._log_path
        self._control.settimeout(start_timeout)
        try:
            ready = json.loads(self._lines.readline() or "{}")
        except (OSError, ValueError) as error:
            ready = {"error": str(error)}
        if not ready.get("ready"):
            self.close()
            if ready.get("error"):
                raise ZygoteFailed(ready["error"])
            raise ZygoteFailed(f"the grading process did not start ({ready}); see "
                               f"{log_path or 'its log (pass log_path)'}")
        self._control.settimeout(None)
        self.sandbox = ready["sandbox"]
        self.scratch_root = tempfile.gettempdir()
        return self

    def start(self, job: dict) -> tuple[int, int, int]:
        """Fork a run for ``job``; return (its process id, events fd, output fd)."""
        self.wait_ready()
        job_r, job_w = os.pipe()
        events_r, events_w = os.pipe()
        output_r, output_w = os.pipe()
        with self._lock:
            socket.send_fds(self._control, [b'{"op": "run"}'], [job_r, events_w, output_w])
            for fd in (job_r, events_w, output_w):
                os.close(fd)
            reply = json.loads(self._lines.readline() or "{}")
        if "pid" not in reply:
            for fd in (job_w, events_r, output_r):
                os.close(fd)
            raise ZygoteFailed("the grading process stopped answering")
        data = json.dumps({**job, "scratch_root": self.scratch_root}).encode()
        threading.Thread(target=_write_all, args=(job_w, data), daemon=True).start()
        return reply["pid"], events_r, output_r

    def close(self) -> None:
        """Stop the zygote and every process it started."""
        try:
            self._control.close()
        finally:
            if self.process.poll() is None:
                _kill_group(self.process.pid)
                self.process.wait()
            self._log.close()
            sweep_cgroups(self.process.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:
        pass  # the run died before reading its job: its events say so


def _kill_group(pid: int) -> None:
    for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill()


def _run_once(zygote: Zygote, job: dict, step_timeouts: list[float], deadline: float
              ) -> tuple[dict[int, StepResult], int | None, str | None]:
    """One process's run. Returns the step results it reported, and the step it crashed on
    (with ``timeout`` or ``died``) or None when it finished."""
    pid, events_fd, output_fd = zygote.start(job)
    results: dict[int, StepResult] = {}
    selector = selectors.DefaultSelector()
    for fd in (events_fd, output_fd):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    buffer, received, current, step_deadline = b"", 0, None, deadline
    finished, crash = False, None
    order = [i for i in range(len(step_timeouts)) if i not in set(job.get("skip", []))]
    started = 0  # how many steps of ``order`` have started
    try:
        while selector.get_map():
            wait = min(step_deadline, deadline) - time.monotonic()
            if wait <= 0:
                crash = "timeout"
                break
            for key, _ in selector.select(timeout=wait):
                chunk = os.read(key.fd, 1 << 20)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                if key.fd == output_fd:
                    continue  # raw output of the process and its children: read and dropped
                received += len(chunk)
                if received > RESULT_LIMIT:
                    crash = "died"
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > LINE_LIMIT:
                    buffer = b""  # an endless line: dropped
                for line in lines:
                    event = _parse(line) if len(line) <= LINE_LIMIT else {}
                    kind = event.get("event")
                    step = event.get("step")
                    if kind is None:
                        continue  # malformed: nothing to act on
                    if not _in_order(kind, step, current, order, started):
                        crash = "tampered"  # the run wrote events of its own: nothing counts
                        break
                    if kind == "start":
                        current, started = step, started + 1
                        step_deadline = time.monotonic() + step_timeouts[step]
                    elif kind == "values":
                        kept = results.setdefault(current, StepResult("running")).values
                        if len(kept) < PAYLOADS_KEPT:  # two already tell "more than one"
                            kept.append(event.get("payload"))
                    elif kind == "end":
                        result = results.setdefault(current, StepResult("running"))
                        result.status = "ok" if event.get("ok") is True else "error"
                        result.error = _text(event.get("error"))
                        result.error_type = _text(event.get("error_type"))
                        result.output = _text(event.get("output")) or ""
                        result.seconds = _number(event.get("seconds"))
                        current, step_deadline = None, deadline
                    else:  # done
                        finished = True
                if crash:
                    break
            if crash:
                break
        if not crash and not finished:
            crash = "died"
    finally:
        _kill_group(pid)
        selector.close()
        os.close(events_fd)
        os.close(output_fd)
        name = run_name(pid, zygote.process.pid)
        if zygote.sandbox != "none" and not cgroups_joined(name):
            zygote.unbounded_runs += 1
        remove_cgroups(name)
        if zygote.sandbox == "none":  # the fallback's scratch folder is a real one
            shutil.rmtree(os.path.join(zygote.scratch_root, name), ignore_errors=True)
    if crash == "tampered":
        return results, None, crash
    if crash and current is None:
        # died between steps: blame the next step that has no result
        current = next((i for i in range(len(step_timeouts))
                        if i not in results and i not in job.get("skip", [])), None)
    if crash and current is not None:
        results[current] = StepResult(crash, error="timeout" if crash == "timeout"
                                      else "the process died")
    return results, (current if crash else None), crash


def _in_order(kind, step, current, order: list[int], started: int) -> bool:
    """Whether an event is one the zygote's loop sends next: each step of ``order`` started
    once, in order, its values and end while it runs, ``done`` after the last. Anything else
    was written by the submission (it can reach the event pipe): a forged ``start`` once let a
    value computed by a later cell count for a hidden check that had already ended."""
    if kind == "start":
        return current is None and started < len(order) and step == order[started]
    if kind in ("values", "end"):
        return current is not None and step == current
    return kind == "done" and current is None and started == len(order)


def _parse(line: bytes) -> dict:
    try:
        event = json.loads(line)
    except Exception:  # (whatever a run sends: malformed, too deep, too big)
        return {}
    return event if isinstance(event, dict) else {}


def _text(value) -> str | None:
    return value[:4000] if isinstance(value, str) else None


def _number(value) -> float:
    """A run's claimed seconds, if it is a finite, sane number (else 0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if number == number and 0 <= number < 1e6:
            return number
    return 0.0


def execute(zygote: Zygote, steps: list[dict], seed: int, limits: dict,
            step_timeouts: list[float], submission_timeout: float) -> list[StepResult]:
    """Run every step, restarting after a crash without the crashed step; one result a step."""
    deadline = time.monotonic() + submission_timeout
    results: dict[int, StepResult] = {}
    skip: list[int] = []
    while True:
        job = {"steps": steps, "seed": seed, "limits": limits, "skip": list(skip)}
        reported, crashed_at, crash = _run_once(zygote, job, step_timeouts, deadline)
        if crash == "tampered":
            return [StepResult("tampered", error=TAMPERED) for _ in steps]
        for index, result in reported.items():  # earlier steps were re-run for their state
            if index == crashed_at or index not in results:
                results[index] = result
        if crashed_at is None or time.monotonic() >= deadline:
            break
        skip.append(crashed_at)
        if len(skip) >= len(steps):
            break
    out_of_time = time.monotonic() >= deadline
    return [results.get(i) or StepResult(
        "timeout" if out_of_time else "skipped",
        error="the submission's time ran out" if out_of_time else None)
        for i in range(len(steps))]
