"""`segcourse lab run` stores what a lab prints, without TensorFlow's C++ log."""

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from segcourse.labs.execute import is_cpp_log_noise, run_notebook, strip_cpp_log

ROOT = Path(__file__).resolve().parents[2]

# What a lab's setup cell received on stderr from TensorFlow 2.21 on a 2-core x86-64 machine
# (oneDNN on), and what other machines add: a CPU-feature notice and CUDA's start-up lines.
ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
ONEDNN = ("I0000 00:00:1796004512.067699   14846 port.cc:153] oneDNN custom operations are on. "
          "You may see slightly different numerical results due to floating-point round-off "
          "errors from different computation orders. To turn them off, set the environment "
          "variable `TF_ENABLE_ONEDNN_OPTS=0`.\n")
CPU_FEATURES = ("I0000 00:00:1733000000.123456   2211 cpu_feature_guard.cc:210] This TensorFlow "
                "binary is optimized to use available CPU instructions in performance-critical "
                "operations.\nTo enable the following instructions: AVX2 FMA, in other "
                "operations, rebuild TensorFlow with the appropriate compiler flags.\n")
CUDA = ("E0000 00:00:1733000000.223344   2211 cuda_dnn.cc:8310] Unable to register cuDNN "
        "factory: Attempting to register factory for plugin cuDNN when one has already been "
        "registered\nW0000 00:00:1733000001.000001   2211 gpu_device.cc:2344] Cannot dlopen "
        "some GPU libraries.\n")
REAL_ERROR = "E1130 10:00:00.000001   2211 kernel.cc:42] something went wrong in a kernel\n"


@pytest.mark.parametrize("line", (ABSL + ONEDNN + CPU_FEATURES + CUDA).splitlines())
def test_tensorflow_start_up_lines_are_noise(line):
    assert is_cpp_log_noise(line)


@pytest.mark.parametrize("line", [
    REAL_ERROR,  # an error that is not a known start-up one stays
    "Traceback (most recent call last):\n",
    "UserWarning: something a cell warned about\n",
    "I0000 is not a log line without the rest of the prefix\n",
    "WARNING: All log messages before this one\n",
])
def test_other_stderr_lines_are_kept(line):
    assert not is_cpp_log_noise(line)


def test_strip_removes_the_log_and_keeps_everything_else():
    setup = nbformat.v4.new_code_cell("PROFILE = setup()")
    setup.outputs = [nbformat.v4.new_output("stream", name="stderr", text=ABSL + ONEDNN),
                     nbformat.v4.new_output("stream", name="stdout", text="keras  3.15.1\n"),
                     nbformat.v4.new_output("stream", name="stderr", text=ABSL + ONEDNN)]
    later = nbformat.v4.new_code_cell("train()")
    later.outputs = [nbformat.v4.new_output("stream", name="stderr",
                                            text=CPU_FEATURES + "a cell's own warning\n" + CUDA
                                            + REAL_ERROR),
                     nbformat.v4.new_output("stream", name="stdout", text=ONEDNN)]
    nb = nbformat.v4.new_notebook(cells=[setup, nbformat.v4.new_markdown_cell(ONEDNN), later])
    assert strip_cpp_log(nb) == 2 * 2 + 2 + 2  # setup: absl + oneDNN twice; later: 2 + 2
    assert [o.text for o in setup.outputs] == ["keras  3.15.1\n"]
    assert [(o.name, o.text) for o in later.outputs] == [
        ("stderr", "a cell's own warning\n" + REAL_ERROR),
        ("stdout", ONEDNN)]  # stdout is what the cell printed: never touched
    assert nb.cells[1].source == ONEDNN


def test_lab_run_stores_no_tensorflow_log(tmp_path):
    """End to end: what a cell writes to stderr in the kernel is stored, less the log lines."""
    cell = nbformat.v4.new_code_cell(
        f"import sys\nsys.stderr.write({ABSL + ONEDNN!r})\nsys.stderr.flush()\n"
        "print('kept', file=sys.stderr)\nprint('out')")
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    run_notebook(path, profile="cpu", timeout=120)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    stderr = "".join(o.text for o in outputs if o.get("name") == "stderr")
    assert stderr == "kept\n"
    assert "".join(o.text for o in outputs if o.get("name") == "stdout") == "out\n"


def test_the_kernel_is_shut_down_after_the_run_even_when_a_cell_fails(tmp_path, monkeypatch):
    """nbclient leaves a kernel it was handed running: lab run over fifteen labs kept fifteen
    (3-6 GB each). Its process must be gone when run_notebook returns, or raises."""
    from jupyter_core.utils import run_sync

    import segcourse.labs.execute as execute

    managers = []
    original = execute.current_env_kernel_manager
    monkeypatch.setattr(execute, "current_env_kernel_manager",
                        lambda: managers.append(original()) or managers[-1])
    path = tmp_path / "lab.ipynb"
    for source, raises in (("print('ran')", False), ("1 / 0", True)):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
        if raises:
            with pytest.raises(Exception, match="ZeroDivisionError"):
                run_notebook(path, profile="cpu", timeout=120, write=False)
        else:
            run_notebook(path, profile="cpu", timeout=120, write=False)
        kernel = managers[-1]
        assert not kernel.has_kernel and not run_sync(kernel.is_alive)()


@pytest.mark.skipif(os.name != "posix", reason="local sockets are POSIX's")
def test_kernels_started_at_once_get_sockets_of_their_own_and_leave_none(tmp_path, monkeypatch):
    """Two kernels started at once over TCP could be given one port (jupyter_client picks a free
    port, releases it, the kernel binds it later): 'Address already in use', a kernel that never
    answers, a test worker's run lost. Each kernel gets its own socket files, removed after."""
    from concurrent.futures import ThreadPoolExecutor

    import segcourse.labs.execute as execute

    managers = []
    original = execute.current_env_kernel_manager
    monkeypatch.setattr(execute, "current_env_kernel_manager",
                        lambda: managers.append(original()) or managers[-1])
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            f"print('{name}')")]), paths[-1])
    with ThreadPoolExecutor(2) as pool:  # a private event loop each: run_sync makes its own
        runs = list(pool.map(lambda path: run_notebook(path, timeout=120, write=False), paths))
    assert [run.cells[0].outputs[0]["text"] for run in runs] == ["a\n", "b\n"]
    assert [m.transport for m in managers] == ["ipc", "ipc"]
    assert all(Path(m.ip).is_absolute() for m in managers) and managers[0].ip != managers[1].ip
    assert not [path for m in managers for path in Path(m.ip).parent.glob(Path(m.ip).name + "*")]


def test_a_socket_path_past_the_systems_limit_falls_back_to_tcp(monkeypatch, tmp_path):
    """A long TMPDIR (a socket path past sun_path's 104-108 bytes): pyzmq could not bind it and
    the kernel would never answer; such kernels use TCP instead."""
    import tempfile

    from segcourse.labs.execute import SOCKET_PATH_LIMIT, current_env_kernel_manager

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("d" * 80)))
    assert current_env_kernel_manager().transport == "tcp"
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    manager = current_env_kernel_manager()
    assert manager.transport == ("ipc" if os.name == "posix" else "tcp")
    assert len(manager.ip) + len("-12345") <= SOCKET_PATH_LIMIT


def test_the_kernel_gets_its_settings_and_this_process_keeps_its_own(tmp_path, monkeypatch):
    """A run's profile reaches its kernel only: the caller's environment is left as it was
    (it was once set and restored around the run, which two runs in two threads could leave
    changed, e.g. SEGCOURSE_PROFILE=cpu on a GPU runner)."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("SEGCOURSE_PROFILE", "gpu")
    monkeypatch.setenv("SEGCOURSE_DRY_RUN", "1")
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, time\nprint(os.environ.get('SEGCOURSE_PROFILE'), "
        "os.environ.get('SEGCOURSE_DRY_RUN'), os.getcwd())\ntime.sleep(2)")]), path)
    seen = set()  # what this process's environment says while the kernel runs
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run_notebook, path, profile="cpu", timeout=120, write=False)
        while not running.done():
            seen.add((os.environ.get("SEGCOURSE_PROFILE"), os.environ.get("SEGCOURSE_DRY_RUN")))
            time.sleep(0.05)
        run = running.result()
    assert run.cells[0].outputs[0]["text"] == f"cpu None {tmp_path}\n"
    assert seen == {("gpu", "1")}


def test_a_cell_past_the_timeout_is_stopped(tmp_path):
    """The timeout of lab run and lab dry-run is per cell (nbclient ignored it with a blocking
    kernel manager: a cell that slept 20 s under timeout=5 ran to its end)."""
    from nbclient.exceptions import CellTimeoutError

    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import time\ntime.sleep(60)")]), path)
    started = time.monotonic()
    with pytest.raises(CellTimeoutError):
        run_notebook(path, profile="cpu", timeout=3, write=False)
    assert time.monotonic() - started < 40


def test_no_reference_lab_stores_the_log():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            for output in cell.get("outputs", []):
                if output.get("name") == "stderr":
                    text = "".join(output["text"])
                    noise = [line for line in text.splitlines() if is_cpp_log_noise(line)]
                    assert not noise, f"{path.name} cell {index}: {noise[0]!r}"


def test_a_progress_bar_is_stored_as_its_last_state(tmp_path):
    """A bar redrawn with carriage returns (Keras', tqdm's) is one stored line, not one output
    per update: lab run coalesces each stream and applies the carriage returns."""
    cell = nbformat.v4.new_code_cell(
        "import sys, time\nfor done in range(1, 4):\n"
        "    sys.stdout.write(f'\\rstep {done}/3'); sys.stdout.flush(); time.sleep(0.05)\n"
        "print()\nprint('trained')")
    path = tmp_path / "lab.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    outputs = run_notebook(path, profile="cpu", timeout=120, write=False).cells[0].outputs
    assert [(o.name, o.text) for o in outputs] == [("stdout", "step 3/3\ntrained\n")]
