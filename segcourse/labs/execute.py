"""Run a lab notebook top to bottom in this environment's Python and store its outputs.

This is how a reference notebook's checked outputs are (re)made after an edit:
``segcourse lab run notebooks/00_welcome.ipynb --profile cpu`` (without ``--profile``, the profile
rule of :func:`segcourse.labs.profiles.choose_profile`; references are stored from the CPU
profile).

The stored outputs leave out TensorFlow's C++ log (:func:`strip_cpp_log`). The kernel shows
C-level stderr, and ``TF_CPP_MIN_LOG_LEVEL=3`` (set by the labs' setup) does not silence all of
it: TensorFlow 2.21 writes its oneDNN notice (``port.cc``) through absl's logger, which ignores
that variable, and absl announces its first message with "WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR". Such lines describe the machine
(thread ids, timestamps, CPU features, GPUs), not the lab.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from pathlib import Path

from segcourse.labs.profiles import DRY_RUN_VARIABLE, PROFILE_VARIABLE, PROFILES

#: The longest socket file path every POSIX system takes (sun_path: 108 bytes on Linux, 104 on
#: macOS and the BSDs, the terminating NUL included); past it the kernels use TCP.
SOCKET_PATH_LIMIT = 103


def current_env_kernel_manager():
    """A kernel manager that starts ``sys.executable -m ipykernel_launcher``, whatever
    kernelspecs the machine has (the same idea as nbval's ``--nbval-current-env``), with
    IPython's history off: a reference run must not leave its solutions in a history file."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class CurrentEnvironment(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}", "--HistoryManager.enabled=False"],
                              display_name="Python (segcourse environment)", language="python")

    # asynchronous: with a blocking KernelManager, nbclient never times a cell out (a cell that
    # slept 20 s under timeout=5 ran to its end). Local sockets (ipc) where there are: TCP ports
    # are picked, released, then bound by the kernel, and two kernels started at once (two test
    # workers) can be given one port ("ZMQError: Address already in use", a kernel that never
    # answers); a socket file's name is the kernel's own, an absolute path (the kernel starts in
    # the notebook's folder), removed at the kernel's shutdown
    sockets = str(Path(tempfile.gettempdir()) / f"segcourse-kernel-{uuid.uuid4().hex[:16]}")
    local = os.name == "posix" and len(sockets.encode()) + len("-12345") <= SOCKET_PATH_LIMIT
    return AsyncKernelManager(kernel_name="segcourse-current-env",
                              kernel_spec_manager=CurrentEnvironment(),
                              **({"transport": "ipc", "ip": sockets} if local else {}))


#: What absl writes before its first message when nothing initialized its logging.
ABSL_NOTICE = ("WARNING: All log messages before absl::InitializeLog() is called are written "
               "to STDERR")
#: A line of absl's (or glog's) C++ log format: severity, MMDD, time, thread id, ``file:line]``
#: (before absl is initialized it writes ``0000 00:00:<seconds since 1970>``).
_CPP_LOG_LINE = re.compile(r"^(?P<severity>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\] ")
#: Errors TensorFlow logs at every start on a CUDA machine: a plugin registered twice.
_STARTUP_ERRORS = ("Unable to register cuDNN factory", "Unable to register cuFFT factory",
                   "Unable to register cuBLAS factory")
#: The second line of cpu_feature_guard's message, which has no log prefix of its own.
_CPU_FEATURES = re.compile(r"^To enable the following instructions: .* in other operations, "
                           r"rebuild TensorFlow with the appropriate compiler flags\.$")


def is_cpp_log_noise(line: str) -> bool:
    """Whether one stderr line is TensorFlow's C++ log that a stored lab leaves out: absl's
    notice, any info (``I``) or warning (``W``) line in the C++ log format, CUDA's plugin
    registration errors, or cpu_feature_guard's second line (it has no prefix). Every other
    error (``E``, ``F``) stays, and so does every line a cell writes itself."""
    line = line.rstrip("\r\n")
    if line == ABSL_NOTICE or _CPU_FEATURES.match(line):
        return True
    match = _CPP_LOG_LINE.match(line)
    if match is None:
        return False
    return match["severity"] in "IW" or any(error in line for error in _STARTUP_ERRORS)


def strip_cpp_log(nb):
    """Remove TensorFlow's C++ log lines (:func:`is_cpp_log_noise`) from the notebook's stderr
    stream outputs, in place, and drop the streams left empty; every other output is kept as it
    was. Returns how many lines went."""
    removed = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        kept_outputs = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = output.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                lines = text.splitlines(keepends=True)
                kept = [line for line in lines if not is_cpp_log_noise(line)]
                removed += len(lines) - len(kept)
                if not kept:
                    continue
                output["text"] = "".join(kept)
            kept_outputs.append(output)
        cell["outputs"] = kept_outputs
    return removed


def _kernel_environment(changes: dict) -> dict:
    """This process's environment with ``changes`` made (a value of ``None`` removes the
    variable): what a kernel is started with. This process's own is left as it is, so that two
    runs in two threads, or a run and the caller, cannot see each other's settings."""
    environment = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def execute_in_kernel(nb, directory, environ: dict, timeout: int = 600,
                      allow_errors: bool = False) -> None:
    """Execute ``nb`` in place in a fresh kernel of this environment, started in ``directory``
    with this process's environment changed by ``environ`` (a value of ``None`` removes the
    variable), and shut the kernel down afterwards, whatever happened (nbclient leaves a kernel
    it did not start running: a run of fifteen labs would keep fifteen)."""
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    km = current_env_kernel_manager()
    try:
        # coalesce_streams: one output per stream, progress bars' carriage returns applied (a
        # bar is stored as its last state, not as one output per update)
        NotebookClient(nb, km=km, timeout=timeout, allow_errors=allow_errors,
                       coalesce_streams=True,
                       resources={"metadata": {"path": str(directory)}}).execute(
            env=_kernel_environment(environ))
    finally:
        if km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)


def run_notebook(path, profile: str = "cpu", timeout: int = 600, write: bool = True):
    """Execute the notebook at ``path``; return it, and write it back with outputs if asked.
    TensorFlow's C++ log is left out of the outputs (:func:`strip_cpp_log`)."""
    import nbformat

    from segcourse.labs.notebook import read_notebook

    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {PROFILES}.")
    path = Path(path)
    nb = read_notebook(path)
    # never a dry run, whatever this shell exported: these outputs become the reference's
    execute_in_kernel(nb, path.parent, {PROFILE_VARIABLE: profile, DRY_RUN_VARIABLE: None},
                      timeout)
    strip_cpp_log(nb)
    if write:
        nbformat.write(nb, path)
    return nb
