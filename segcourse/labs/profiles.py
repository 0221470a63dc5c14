"""The two lab profiles: a small CPU profile (CI, an offline laptop) and a full GPU profile (Colab).

The profile is detected from the machine (an accelerator present or not) and can be forced with
the environment variable ``SEGCOURSE_PROFILE=cpu|gpu``. A lab asks the profile for its sizes
(``PROFILE.pick(cpu=2, gpu=30)`` epochs, say); its check cells print the same text in both.
The commands that take ``--profile`` (``segcourse train``, ``segcourse lab run``) choose by one
rule (:func:`choose_profile`): ``--profile`` when given, else :data:`PROFILE_RULE`.

``SEGCOURSE_DRY_RUN=1`` (set by ``segcourse lab dry-run``) makes a *dry run* of the GPU profile
on any machine: the GPU-only sections run, ``pick`` gives the CPU value, ``budget`` its small
dry-run value, and :mod:`segcourse.labs.dry_run` cuts every training to a few steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from segcourse.labs.environment import accelerators

PROFILE_VARIABLE = "SEGCOURSE_PROFILE"
DRY_RUN_VARIABLE = "SEGCOURSE_DRY_RUN"
PROFILES = ("cpu", "gpu")
# What a command chooses without --profile (its --help says so): detect_profile's rule.
PROFILE_RULE = (f"${PROFILE_VARIABLE} when set, else gpu when the backend sees an accelerator, "
                "else cpu")


@dataclass(frozen=True)
class Profile:
    """A profile's ``name`` (cpu or gpu), the ``reason`` it was chosen, and whether it is a dry
    run of the GPU profile (``dry_run``: the GPU sections on a CPU, a few steps each)."""

    name: str
    reason: str
    dry_run: bool = False

    def pick(self, *, cpu, gpu):
        """The value for this profile: ``cpu`` on the CPU profile, ``gpu`` on the GPU one; a dry
        run runs what both profiles share at the CPU profile's sizes, so it gets ``cpu``."""
        return cpu if self.name == "cpu" or self.dry_run else gpu

    def budget(self, full, dry_run=2):
        """A count (pictures, steps, copies) in a GPU-only section: ``full``, or ``dry_run`` in a
        dry run, which only checks that the code runs."""
        return dry_run if self.dry_run else full

    def __str__(self):
        return f"{self.name} profile ({self.reason})"


def dry_run_profile(environ=None) -> Profile | None:
    """The dry run's profile when ``SEGCOURSE_DRY_RUN`` is set (to anything but 0 or nothing),
    else ``None``. Only a lab's ``setup()`` asks: ``segcourse lab dry-run`` sets the variable
    for its kernels, and no command takes it as a profile."""
    environ = os.environ if environ is None else environ
    if environ.get(DRY_RUN_VARIABLE, "").strip() in ("", "0"):
        return None
    return Profile("gpu", f"dry run, forced by {DRY_RUN_VARIABLE}: the GPU sections at CPU "
                   "sizes, each training cut to a few steps; its scores mean nothing",
                   dry_run=True)


def detect_profile(environ=None) -> Profile:
    """``SEGCOURSE_PROFILE`` when set, else ``gpu`` when the backend sees an accelerator."""
    environ = os.environ if environ is None else environ
    forced = environ.get(PROFILE_VARIABLE, "").strip().lower()
    if forced:
        if forced not in PROFILES:
            raise ValueError(
                f"{PROFILE_VARIABLE}={environ[PROFILE_VARIABLE]!r} is not a profile; set it to "
                f"one of {', '.join(PROFILES)}, or unset it to detect from the machine."
            )
        return Profile(forced, f"forced by {PROFILE_VARIABLE}")
    found = accelerators()
    if found:
        return Profile("gpu", f"found {', '.join(found)}")
    return Profile("cpu", "no GPU found")


def choose_profile(given: str | None = None, environ=None) -> Profile:
    """The profile of a command: ``given`` (its ``--profile``) when not ``None``, else
    :func:`detect_profile`'s (:data:`PROFILE_RULE`)."""
    if given is None:
        return detect_profile(environ)
    if given not in PROFILES:
        raise ValueError(f"profile {given!r} is not one of {', '.join(PROFILES)}.")
    return Profile(given, "given with --profile")
