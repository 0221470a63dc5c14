"""Tooling for the lab notebooks: setup, profiles, check helpers, conventions, execution."""

from __future__ import annotations

from segcourse.labs.checks import (
    CheckFailed,
    check,
    check_at_least,
    check_cases,
    check_close,
    check_equal,
    check_prediction,
    check_shape,
)
from segcourse.labs.profiles import Profile, detect_profile, dry_run_profile


def setup() -> Profile:
    """The labs' first call: TensorFlow's start-up settings (quiet logs, fast CPU kernels; see
    :func:`segcourse.labs.environment.prepare_tensorflow`), float32 without TF32 on GPUs
    (:func:`~segcourse.labs.environment.full_float32`), the environment, a profile (in a dry
    run, :func:`segcourse.labs.dry_run.install` too)."""
    from segcourse.labs.environment import (
        environment_report,
        format_report,
        full_float32,
        prepare_tensorflow,
    )

    prepare_tensorflow()
    full_float32()

    profile = dry_run_profile() or detect_profile()
    if profile.dry_run:
        from segcourse.labs.dry_run import install

        install()
    print(format_report({**environment_report(), "profile": str(profile)}))
    return profile


__all__ = [
    "CheckFailed",
    "Profile",
    "check",
    "check_at_least",
    "check_cases",
    "check_close",
    "check_equal",
    "check_prediction",
    "check_shape",
    "detect_profile",
    "dry_run_profile",
    "setup",
]
