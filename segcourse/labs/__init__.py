"""Tooling for the lab notebooks: setup, profiles, check helpers, conventions, execution."""

from __future__ import annotations

from segcourse.labs.checks import (
    CheckFailed,
    check,
    check_at_least,
    check_close,
    check_equal,
    check_shape,
)
from segcourse.labs.profiles import Profile, detect_profile


def setup() -> Profile:
    """The labs' first call: quiet TensorFlow's C++ logs, print the environment, pick a profile."""
    from segcourse.labs.environment import environment_report, format_report, quiet_tensorflow

    quiet_tensorflow()

    profile = detect_profile()
    print(format_report({**environment_report(), "profile": str(profile)}))
    return profile


__all__ = [
    "CheckFailed",
    "Profile",
    "check",
    "check_at_least",
    "check_close",
    "check_equal",
    "check_shape",
    "detect_profile",
    "setup",
]
