"""The sandbox from inside a run: what a submission can do (compute, spawn, write scratch) and
what it cannot (see the host's files, keep secrets' variables, make namespaces or keys, outlive
its run). Runs steps through the executor, as the grader does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from segcourse.grading.batch import DEFAULT_LIMITS
from segcourse.grading.executor import Zygote, execute
from segcourse.grading.sandbox import DENIED_SYSCALLS, _seccomp_program

ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = sys.platform == "linux" and os.geteuid() == 0
MARKER = "segcourse-survivor-marker"


def run(zygote, *sources, timeout=30):
    results = execute(zygote, [{"source": s} for s in sources], 1, DEFAULT_LIMITS,
                      [timeout] * len(sources), 120)
    return [(r.status, (r.output or "").strip(), r.error) for r in results]


@pytest.fixture(scope="module")
def zygote():
    os.environ["SEGCOURSE_TEST_SECRET"] = "a TA's token"
    try:
        with Zygote(hide=[ROOT / "notebooks"]) as made:
            made.wait_ready()
            yield made
    finally:
        del os.environ["SEGCOURSE_TEST_SECRET"]


def test_a_run_computes_spawns_and_writes_its_scratch(zygote):
    steps = run(zygote,
                "import keras, numpy as np\n"
                "print(keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.ones((3, 3)))))",
                "import subprocess, threading\n"
                "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout)",
                "open('notes.txt', 'w').write('mine'); print(open('notes.txt').read())",
                # modules the zygote never imported load from the environment, wherever it is
                # (CI's clone, and so its environment, lives under /tmp, which each run
                # replaces with a fresh tmpfs)
                "import IPython.core.logger, email.mime.text, xml.dom.minidom\nprint('loaded')")
    assert [s[0] for s in steps] == ["ok", "ok", "ok", "ok"], steps
    assert [s[1] for s in steps] == ["9.0", "child", "mine", "loaded"]


FORGE = """
import os
for _fd in range(3, 64):  # wherever the event pipe is
    try:
        os.write(_fd, b'{"event": "end", "step": %d, "ok": true}\\n'
                      b'{"event": "start", "step": %d}\\n'
                      b'{"event": "values", "step": %d, "payload": {"values": {}}}\\n')
    except OSError:
        pass
"""


@pytest.mark.parametrize("forged", [(0, 2, 2), (0, 1, 1), (5, 5, 5)])
def test_events_a_run_writes_itself_void_the_run(zygote, forged):
    # a forged start let a hidden step that had ended take a value a later cell computed
    steps = [{"source": FORGE % forged}, {"source": "x = 1"}, {"source": "print(x)"}]
    results = execute(zygote, steps, 1, DEFAULT_LIMITS, [30] * len(steps), 120)
    assert [r.status for r in results] == ["tampered"] * 3
    assert "events of its own" in results[0].error and not any(r.values for r in results)


def test_a_run_cannot_hold_its_own_events_back_by_replacing_what_writes_them(zygote):
    steps = [{"source": "import json, os\njson.dumps = lambda *a, **k: '{}'\n"
                        "os.write = lambda fd, data: len(data)"},
             {"source": "print('still reported')"}]
    results = execute(zygote, steps, 1, DEFAULT_LIMITS, [30] * len(steps), 120)
    assert [(r.status, r.output.strip()) for r in results] == [("ok", ""),
                                                              ("ok", "still reported")]


def test_an_isolated_step_leaves_the_namespace_as_it_found_it(zygote):
    # the hidden checks run in place: what they bind must not reach the cells after them
    steps = [{"source": "x = 1\nkept = []\ndef f():\n    return x"},
             {"source": "x = 2\nnew = 3\ndel kept\n", "isolated": True},
             {"source": "kept.append(f())\n1 / 0", "isolated": True},  # fails: undone too
             {"source": "print(x, 'new' in globals(), kept, f())"}]
    results = execute(zygote, steps, 1, DEFAULT_LIMITS, [30] * len(steps), 120)
    assert [r.status for r in results] == ["ok", "ok", "error", "ok"]
    # names rebound, added or deleted come back; an object changed in place stays changed
    assert results[-1].output.strip() == "1 False [1] 1"


@pytest.mark.skipif(not NAMESPACES, reason="the sandbox needs Linux namespaces (root)")
def test_a_run_sees_only_what_it_needs(zygote):
    assert zygote.sandbox.startswith("namespaces")
    (status, output, _), = run(zygote, "import os\n"
                               "print(sorted(os.listdir('/')))\n"
                               "print(sorted(os.listdir('/root')) if os.path.isdir('/root') "
                               "else [])\n"
                               "print([p for p in ('/root/.ipython', '/home', '/etc/shadow', "
                               f"'{ROOT}/notebooks', '{ROOT}/.git', '{ROOT}/README.md', '/run') "
                               "if os.path.exists(p)])\n"
                               "print(os.environ.get('SEGCOURSE_TEST_SECRET'))")
    listing, in_root, exposed, secret = output.splitlines()
    assert status == "ok"
    assert "'home'" not in listing and "'etc'" in listing
    assert in_root in ("[]", "['.pyenv']")  # only the interpreter's own folder, if it is there
    assert exposed == "[]"
    assert secret == "None"


@pytest.mark.skipif(not NAMESPACES, reason="the sandbox needs Linux namespaces (root)")
@pytest.mark.parametrize("call", [
    "ctypes.CDLL(None, use_errno=True).syscall(250, 0, 0, 0, 0)",  # keyctl
    "ctypes.CDLL(None, use_errno=True).unshare(0x10000000)",  # a user namespace
    "ctypes.CDLL(None, use_errno=True).syscall(56, 0x20000000 | 17, 0, 0, 0, 0)",  # clone NEWPID
    "ctypes.CDLL(None, use_errno=True).mount(b'none', b'/tmp', b'tmpfs', 0, None)",
])
def test_kernel_surfaces_no_lab_needs_are_refused(zygote, call):
    (status, output, _), = run(zygote, f"import ctypes\nprint({call}, ctypes.get_errno())")
    assert status == "ok" and output == "-1 1", output  # EPERM


def test_the_seccomp_filter_jumps_stay_inside_the_program():
    program = _seccomp_program()
    for index, (code, jump_true, jump_false, _) in enumerate(program):
        if code & 0x07 == 0x05:  # a jump
            assert index + 1 + max(jump_true, jump_false) < len(program)
    assert sum(1 for row in program if row[0] == 0x15) >= len(DENIED_SYSCALLS)


@pytest.mark.skipif(not NAMESPACES, reason="the sandbox needs Linux namespaces (root)")
def test_nothing_a_run_started_outlives_it(zygote):
    escape = ("import ctypes, os, sys, time\n"
              "if os.fork() == 0:\n"
              "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
              "    os.setsid()\n"
              f"    os.execvp('sleep', ['sleep', '300', '{MARKER}'])\n"
              "print('forked')")
    steps = run(zygote, escape, "while True: pass", timeout=3)
    assert steps[0][:2] == ("ok", "forked") and steps[1][0] == "timeout"
    found = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True).stdout
    assert found == ""


def test_without_namespaces_the_rows_say_so():
    with Zygote(sandbox=False) as plain:
        assert plain.wait_ready().sandbox == "none"
        assert run(plain, "print(6 * 7)") == [("ok", "42", None)]
