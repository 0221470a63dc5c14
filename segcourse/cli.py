"""The ``segcourse`` command.

    segcourse info                       environment, profile and the labs
    segcourse lab run NOTEBOOK...        execute labs in place, storing their outputs
    segcourse lab check NOTEBOOK...      check reference labs against the conventions
    segcourse lab student NOTEBOOK...    build the student versions (into notebooks/student)
"""

from __future__ import annotations

import argparse
import sys


def _info(args) -> int:
    from segcourse.labs import setup
    from segcourse.labs.catalog import LABS

    setup()
    print("\nLabs:")
    for lab in LABS:
        status = lab.notebook if lab.available else "(planned)"
        print(f"  {lab.number:02d}  {lab.title:<58} {status}")
    return 0


def _lab_run(args) -> int:
    from tqdm import tqdm

    from segcourse.labs.execute import run_notebook

    for path in tqdm(args.notebooks, desc="labs", unit="notebook"):
        tqdm.write(f"running {path} ({args.profile} profile)")
        run_notebook(path, profile=args.profile, timeout=args.timeout)
    return 0


def _lab_check(args) -> int:
    import nbformat

    from segcourse.labs.notebook import reference_problems

    failed = 0
    for path in args.notebooks:
        problems = reference_problems(nbformat.read(path, as_version=4))
        print(f"{path}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        for problem in problems:
            print(f"  - {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _lab_student(args) -> int:
    from segcourse.labs.student import build_student_versions

    for path in build_student_versions(args.notebooks, args.out):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segcourse", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="environment, profile and the labs").set_defaults(run=_info)

    lab = commands.add_parser("lab", help="work on the lab notebooks")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    run = lab_commands.add_parser("run", help="execute notebooks in place, storing outputs")
    run.add_argument("notebooks", nargs="+")
    run.add_argument("--profile", choices=("cpu", "gpu"), default="cpu")
    run.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    run.set_defaults(run=_lab_run)
    check = lab_commands.add_parser("check", help="check reference notebooks' conventions")
    check.add_argument("notebooks", nargs="+")
    check.set_defaults(run=_lab_check)
    student = lab_commands.add_parser("student", help="build student versions of reference labs")
    student.add_argument("notebooks", nargs="+")
    student.add_argument("--out", default="notebooks/student", help="folder for the results")
    student.set_defaults(run=_lab_student)
    return parser


def main(argv=None) -> int:
    from segcourse.labs.environment import quiet_tensorflow

    quiet_tensorflow()
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
