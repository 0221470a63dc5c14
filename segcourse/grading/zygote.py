"""The grading zygote: imports TensorFlow once, then forks one sandboxed run per request.

Started by the grader as ``python -m segcourse.grading.zygote --control-fd N``, which then
sends its plan (what to hide) as the first line on that socket. It
imports the heavy libraries (TensorFlow, Keras, segcourse, IPython, matplotlib) *before* any
submitted code exists, enters the sandbox namespaces (:mod:`segcourse.grading.sandbox`), says
``ready``, and then, for each request, forks:

    zygote ── C (a new session; a new PID and mount namespace) ── G (PID 1 there: the run)

The job itself (sources, seed, limits) never passes through the zygote: the grader writes it
into a pipe that only G reads, so no run can find another run's code in memory it inherited.
G executes the steps with an IPython shell and reports on an inherited pipe, one JSON line per
event: ``start``, ``values`` (from :func:`segcourse.labs.hidden.submit`), ``end``, ``done``.
Those events are the run's *claims*; the grader trusts none of them for points except values it
compares itself. Killing C's process group (and with it G, PID 1 of its namespace) ends the
run and every process it started.

This module runs on the kernel side; the grader's own process never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

OUTPUT_LIMIT = 4000  # characters of a step's printed output sent back (feedback only)
PRELOAD = ("numpy", "keras", "tensorflow", "matplotlib.pyplot", "segcourse.layers",
           "segcourse.models", "segcourse.metrics", "segcourse.losses", "segcourse.data",
           "segcourse.analysis", "segcourse.labs", "segcourse.labs.hidden", "segcourse.viz")


def preload() -> object:
    """Import what the labs use, and make the IPython shell every run starts from."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import importlib

    from segcourse.labs.environment import prepare_tensorflow

    prepare_tensorflow()  # as the labs' setup cell does, before TensorFlow is imported

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config, colors="NoColor")


class _Bounded:
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0

    def write(self, text) -> int:
        text = str(text)
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        tail = f"\n… {self.dropped} more characters" if self.dropped else ""
        return "".join(self.parts) + tail


def _describe(error) -> str | None:
    if error is None:
        return None
    try:
        message = str(error)
    except Exception:
        message = ""
    name = type(error).__name__
    return (f"{name}: {message}" if message else name)[:500]


def run_job(shell, job: dict, report) -> None:
    """Execute the job's steps in order (skipping ``job["skip"]``), reporting each. After an
    ``isolated`` step the namespace holds again the names and values it held before (what
    the step bound or deleted is undone; objects it changed in place stay changed)."""
    from segcourse.labs import hidden

    current = {"step": None}
    hidden._sink = lambda payload: report({"event": "values", "step": current["step"],
                                           "payload": payload})
    os.environ[hidden.SEED_VARIABLE] = str(job["seed"])
    skip = set(job.get("skip", []))
    for index, step in enumerate(job["steps"]):
        if index in skip:
            continue
        current["step"] = index
        report({"event": "start", "step": index})
        captured = _Bounded(OUTPUT_LIMIT)
        sys.stdout = sys.stderr = captured
        started = time.perf_counter()
        namespace = dict(shell.user_ns) if step.get("isolated") else None
        try:
            result = shell.run_cell(step["source"], store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as exc:
            error = exc
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            if namespace is not None:  # the same dict: functions keep it as their globals
                shell.user_ns.clear()
                shell.user_ns.update(namespace)
        report({"event": "end", "step": index, "ok": error is None, "error": _describe(error),
                "error_type": type(error).__name__ if error is not None else None,
                "output": captured.text(), "seconds": time.perf_counter() - started})
    report({"event": "done"})


def _reporter(fd: int):
    """The run's event writer. It holds the functions it calls from before any submission runs:
    a cell that replaces ``json.dumps`` or ``os.write`` could otherwise hold the zygote's own
    events back and release them, rewritten and in order, after a later cell had computed a
    value (the grader checks the order, not the timing)."""
    dumps, write = json.dumps, os.write

    def report(event: dict) -> None:
        data = (dumps(event, allow_nan=True) + "\n").encode()
        while data:
            data = data[write(fd, data):]
    return report


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _run(shell, namespaced: bool, fds: list[int], run_name: str) -> None:
    """In C: make G, PID 1 of a fresh PID namespace when ``namespaced``, and wait for it."""
    from segcourse.grading import sandbox

    job_fd, result_fd, output_fd = fds
    sandbox.die_with_parent()  # the zygote gone (the grader stopped): this run goes too
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    if namespaced:  # each run its own PID, mount, network, IPC and host-name namespace
        sandbox.unshare(sandbox.CLONE_NEWPID | sandbox.CLONE_NEWNS | sandbox.CLONE_NEWNET
                        | sandbox.CLONE_NEWIPC | sandbox.CLONE_NEWUTS)
    child = os.fork()
    if child:
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    # G
    job = json.loads(_read_all(job_fd))
    limits = sandbox.Limits(**job["limits"])
    scratch = os.path.join(job.get("scratch_root", "/tmp"), run_name)
    workdir = sandbox.enter_run(namespaced, limits, run_name, scratch)
    os.chdir(workdir)
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "MPLCONFIGDIR": workdir,
                       "PWD": workdir})
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1 << 16)
    report = _reporter(result_fd)
    try:
        run_job(shell, job, report)
    finally:
        sys.stdout.flush()
        os._exit(0)


def serve(control: socket.socket, shell, namespaced: bool) -> None:
    """Fork one sandboxed run per request on ``control`` until the grader closes it."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    count = 0
    while True:
        message, fds, _, _ = socket.recv_fds(control, 4096, 3)
        if not message:
            return
        request = json.loads(message)
        count += 1
        child = os.fork()
        if child == 0:
            control.close()
            try:
                from segcourse.grading.sandbox import run_name

                _run(shell, namespaced, fds, run_name(os.getpid(), os.getppid()))
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        control.sendall((json.dumps({"pid": child, "id": request.get("id")}) + "\n").encode())


def main(argv=None) -> int:
    """The zygote process: preload, then serve the grader on the inherited control socket."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    from segcourse.grading import sandbox

    sandbox.die_with_parent()  # the grader gone: so is this process and every run it made
    control = socket.socket(fileno=args.control_fd)
    plan = json.loads(control.makefile("r").readline() or "{}")  # hide, sandbox: not in argv
    shell = preload()

    description = "none"
    if plan.get("sandbox", True):
        try:
            description = sandbox.enter_zygote_namespaces(
                sandbox.SandboxPlan(hide=plan.get("hide", [])))
        except sandbox.SandboxRefused as refused:
            control.sendall((json.dumps({"ready": False, "error": str(refused)}) + "\n").encode())
            return 2
        if description != "none" and not sandbox.cgroup_limits_available():
            description += " (no cgroup limits: processes and memory unbounded)"
    control.sendall((json.dumps({"ready": True, "sandbox": description,
                                 "pid": os.getpid()}) + "\n").encode())
    serve(control, shell, namespaced=description != "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
