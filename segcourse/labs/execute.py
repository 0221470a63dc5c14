"""Run a lab notebook top to bottom in this environment's Python and store its outputs.

This is how a reference notebook's checked outputs are (re)made after an edit:
``segcourse lab run notebooks/00_welcome.ipynb`` (CPU profile unless told otherwise).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from segcourse.labs.profiles import PROFILE_VARIABLE, PROFILES


def current_env_kernel_manager():
    """A kernel manager that starts ``sys.executable -m ipykernel_launcher``, whatever
    kernelspecs the machine has (the same idea as nbval's ``--nbval-current-env``), with
    IPython's history off: a reference run must not leave its solutions in a history file."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class CurrentEnvironment(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}", "--HistoryManager.enabled=False"],
                              display_name="Python (segcourse environment)", language="python")

    return KernelManager(kernel_name="segcourse-current-env",
                         kernel_spec_manager=CurrentEnvironment())


def run_notebook(path, profile: str = "cpu", timeout: int = 600, write: bool = True):
    """Execute the notebook at ``path``; return it, and write it back with outputs if asked."""
    import nbformat
    from nbclient import NotebookClient

    from segcourse.labs.notebook import read_notebook

    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {PROFILES}.")
    path = Path(path)
    nb = read_notebook(path)
    previous = os.environ.get(PROFILE_VARIABLE)
    os.environ[PROFILE_VARIABLE] = profile  # the kernel inherits this process's environment
    try:
        client = NotebookClient(nb, km=current_env_kernel_manager(), timeout=timeout,
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        if previous is None:
            os.environ.pop(PROFILE_VARIABLE, None)
        else:
            os.environ[PROFILE_VARIABLE] = previous
    if write:
        nbformat.write(nb, path)
    return nb
