"""Every lab's first cell, run with the network and pip replaced: what it installs on Colab,
what it holds, and what a student reads when the install fails."""

import importlib.metadata
import importlib.util
import subprocess
import sys
import types

import pytest

from segcourse import __version__
from segcourse.labs.catalog import INSTALL, REPOSITORY
from segcourse.labs.notebook import setup_source

INSTALL_PART, _, REST = setup_source().partition("\nfrom segcourse.labs import setup\n")


COLAB = {"tensorflow": "2.19.0", "keras": "3.10.0"}  # what a Colab runtime has installed


def run_install_part(monkeypatch, *, colab=True, returncode=0, stderr="", installed=COLAB):
    """The cell up to its import of segcourse, with segcourse missing and ``installed`` the
    distributions there are; pip's calls."""
    calls = []

    def version(name):
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    real_find_spec = importlib.util.find_spec

    def fake_run(args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args, returncode, "", stderr)

    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "segcourse" else real_find_spec(name, *a))
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(importlib.metadata, "version", version)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(INSTALL_PART, "setup-cell", "exec"), {})
    return calls


def test_the_cell_ends_by_importing_and_calling_setup():
    assert REST == "PROFILE = setup()"


def test_on_colab_it_installs_the_one_setting_with_tensorflow_and_keras_held(monkeypatch):
    (args, kwargs), = run_install_part(monkeypatch)
    assert args[:5] == [sys.executable, "-m", "pip", "install", "-q"]
    assert args[5] == INSTALL == (
        f"segcourse[data] @ git+https://github.com/{REPOSITORY}@v{__version__}")
    assert args[6:] == ["tensorflow==2.19.0", "keras==3.10.0"]
    assert kwargs == {"capture_output": True, "text": True}  # no CalledProcessError


def test_what_is_not_installed_is_not_held(monkeypatch):
    (args, _), = run_install_part(monkeypatch, installed={"keras": "3.10.0"})
    assert args[6:] == ["keras==3.10.0"]


def test_a_failed_install_says_what_to_do_and_quotes_pip(monkeypatch):
    with pytest.raises(RuntimeError) as failure:
        run_install_part(monkeypatch, returncode=1,
                         stderr="ERROR: Could not resolve host: github.com")
    message = str(failure.value)
    assert message.startswith("Installing segcourse failed; pip said:")
    assert "Could not resolve host: github.com" in message
    assert "connected to the internet, then run this cell again" in message
    assert "tensorflow==2.19.0 or keras==3.10.0" in message and "instructor" in message
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_a_long_pip_error_is_cut_to_its_end(monkeypatch):
    with pytest.raises(RuntimeError) as failure:
        run_install_part(monkeypatch, returncode=1, stderr="x" * 5000 + "THE CAUSE")
    assert "THE CAUSE" in str(failure.value) and len(str(failure.value)) < 2200


def test_off_colab_it_installs_nothing_and_names_the_command(monkeypatch):
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e '\.\[dev\]'"):
        run_install_part(monkeypatch, colab=False)


def test_where_segcourse_is_installed_nothing_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(INSTALL_PART, "setup-cell", "exec"), {})
    assert calls == []
