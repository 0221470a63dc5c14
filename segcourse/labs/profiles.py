"""The two lab profiles: a small CPU profile (CI, an offline laptop) and a full GPU profile (Colab).

The profile is detected from the machine (an accelerator present or not) and can be forced with
the environment variable ``SEGCOURSE_PROFILE=cpu|gpu``. A lab asks the profile for its sizes
(``PROFILE.pick(cpu=2, gpu=30)`` epochs, say); its check cells print the same text in both.
The commands that take ``--profile`` (``segcourse train``, ``segcourse lab run``) choose by one
rule (:func:`choose_profile`): ``--profile`` when given, else :data:`PROFILE_RULE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from segcourse.labs.environment import accelerators

PROFILE_VARIABLE = "SEGCOURSE_PROFILE"
PROFILES = ("cpu", "gpu")
# What a command chooses without --profile (its --help says so): detect_profile's rule.
PROFILE_RULE = (f"${PROFILE_VARIABLE} when set, else gpu when the backend sees an accelerator, "
                "else cpu")


@dataclass(frozen=True)
class Profile:
    """A profile's ``name`` (cpu or gpu) and the ``reason`` it was chosen."""

    name: str
    reason: str

    def pick(self, *, cpu, gpu):
        """The value for this profile: ``cpu`` on the CPU profile, ``gpu`` on the GPU one."""
        return cpu if self.name == "cpu" else gpu

    def __str__(self):
        return f"{self.name} profile ({self.reason})"


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
