"""From a submission's run to its grades: one row per graded check, its feedback and its flags.

A check's points are earned only when its hidden cell's values equal the reference's
(:mod:`segcourse.grading.values`). Everything else the run reports (the public checks' ``ok``
lines and messages) is feedback, never points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from segcourse.grading.executor import StepResult
from segcourse.grading.plan import Plan
from segcourse.grading.shortcuts import imported_names, shortcut_flags
from segcourse.grading.submission import Submission
from segcourse.grading.values import differing_names, payload_matches

#: A public check's text when it never ran (the submission unreadable, or nothing to run).
PUBLIC_NOT_RUN = "not run"

COLUMNS = ("student", "lab", "check", "points", "max_points", "passed", "reason", "seconds",
           "flags", "sandbox")


@dataclass
class Row:
    """One check of one student, as a line of results.csv."""
    student: str
    lab: str
    check: str
    points: int
    max_points: int
    passed: bool
    reason: str
    seconds: float
    flags: str = ""
    sandbox: str = ""


@dataclass
class Feedback:
    """What a student reads about one check: points and the reason for any lost."""
    check: str
    points: int
    max_points: int
    passed: bool
    reason: str
    public: str  # the public check's result on the inputs the student has seen
    exercises: list[str] = field(default_factory=list)
    detail: str = ""  # what else the student should know about this check
    public_passed: bool = False  # the public check ran to its end without failing


#: Raised whenever a change to the grader can change a student's points; a resumed folder grades
#: again every record an older grader made. 1: hidden checks in place of their public check,
#: in a namespace put back after them; a run whose events come out of order is void (December
#: 2026).
GRADER_VERSION = 1


@dataclass
class Record:
    """Everything about one graded submission (one line of results.jsonl)."""

    student: str
    file: str
    sha256: str
    lab: str
    sandbox: str
    seconds: float
    rows: list[Row]
    feedback: list[Feedback]
    flags: list[str]
    notes: list[str]
    reference: str = ""  # the reference notebook's sha256
    grader: int = 0  # GRADER_VERSION that graded it (0: before versions were recorded)

    @property
    def points(self) -> int:
        """The points earned over all checks."""
        return sum(row.points for row in self.rows)

    @property
    def max_points(self) -> int:
        """The points available over all checks."""
        return sum(row.max_points for row in self.rows)

    def to_json(self) -> dict:
        """The record as plain JSON-ready data (a line of results.jsonl)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Record:
        """The record back from ``to_json``'s data."""
        data = dict(data)
        data["rows"] = [Row(**row) for row in data["rows"]]
        data["feedback"] = [Feedback(**item) for item in data["feedback"]]
        return cls(**data)


def printable(text: str) -> str:
    """``text`` that can be written as UTF-8: a lone surrogate (an undecodable byte of a file
    name, as a Latin-1 "Müller" from an old zip gives, or one a student's run printed) becomes
    its backslash escape, so that one name cannot stop the reports of a whole class."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _short(text: str | None, limit: int = 120) -> str:
    text = " ".join(printable(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _crash(result: StepResult | None) -> str | None:
    if result is None:
        return None
    return {"timeout": "timeout", "died": "kernel died"}.get(result.status)


def _own_reason(check, submission: Submission) -> str | None:
    """``missing cell`` / ``not attempted`` when none of the check's own exercise cells holds
    an answer (nothing is run for it then)."""
    matches = [submission.matches.get(s) for s in check.solutions]
    if matches and all(m is None or m.source is None for m in matches):
        return "missing cell"
    if matches and all(m is None or m.source is None or m.stub for m in matches):
        return "not attempted"
    return None


def _dependency_reason(check, submission: Submission, plan: Plan, results) -> str | None:
    """What went wrong in an exercise cell the check's code relies on, if anything did."""
    for identifier in check.depends_on:
        match = submission.matches.get(identifier)
        if match is None or match.source is None:
            return f"missing cell {identifier}"
        if match.stub:
            return f"cell {identifier} not attempted"
        result = results[plan.solution_steps[identifier]] if results else None
        if result is not None and _crash(result):
            return f"{_crash(result)} (cell {identifier})"
        if result is not None and result.status == "error":
            return f"error in cell {identifier}: {_short(result.error, 80)}"
    return None


def _hidden_reason(result: StepResult, flags: list[str], check_id: str) -> str:
    if result.status in ("timeout", "died"):
        return _crash(result)
    if result.status == "tampered":
        flags.append(f"{check_id}: {result.error}")
        return "tampered"
    if result.error_type == "NotImplementedError":
        return "not attempted"
    if result.status == "error":
        return f"error: {_short(result.error, 80)}"
    if len(result.values) > 1:
        flags.append(f"{check_id}: its hidden cell reported {len(result.values)} times "
                     "(output tampering?)")
        return "wrong values"
    if not result.values:
        return "no values reported"
    return "wrong values"


def _public_text(result: StepResult | None) -> str:
    if result is None or result.status == "skipped":
        return PUBLIC_NOT_RUN
    if result.status == "ok":
        return result.output.strip() or "ok"
    if result.status in ("timeout", "died"):
        return {"timeout": "timed out", "died": "the kernel died"}[result.status]
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    shown = "\n".join(lines[:6]) if result.error_type == "CheckFailed" else ""
    printed = [line for line in lines if line.endswith(": ok")]
    message = result.error or "an error"
    return "\n".join(filter(None, ["\n".join(printed) if not shown else "", message]))


def _detail(check, submission, plan, results, expected, passed, reason) -> str:
    """A sentence or two that explains the check's outcome beyond its reason."""
    parts = []
    own = [(s, results[plan.solution_steps[s]]) for s in check.solutions] if results else []
    for identifier, result in own:
        if result.status in ("timeout", "died", "error"):
            what = {"timeout": "ran out of time", "died": "made the kernel die"}.get(
                result.status, f"raised {_short(result.error, 160)}")
            parts.append(f"Your exercise cell {identifier} {what}; the cells after it ran "
                         "without what it should have defined, so their public checks may "
                         "show errors that are not theirs.")
    hidden = results[check.hidden_step] if results else None
    if reason == "wrong values" and hidden is not None and len(hidden.values) == 1:
        names = differing_names(expected[check.check_id], hidden.values[0])
        if names:
            parts.append("The hidden check's values that differ from the reference's: "
                         f"{', '.join(names)}.")
    if hidden is not None and hidden.error_type == "NameError" and not passed:
        parts.append("A name the check needs is not defined: keep the function and variable "
                     "names of the student version, and put what an exercise needs (a helper "
                     "function, an import) inside its own cell: grading runs the exercise "
                     "cells and the lab's cells, not a new cell you added, and it calls your "
                     "code where the check cell stands, before any cell below it has run.")
    others = [s for s in check.depends_on if s not in check.solutions]
    if others and not passed:
        parts.append(f"This check also runs your cells {', '.join(others)} (its code calls "
                     "them): a mistake there shows here too.")
    if passed and results and results[check.public_step].status != "ok":
        parts.append("The public check did not run cleanly in the grading notebook (it uses "
                     "earlier cells); your exercise passed the hidden check all the same.")
    return " ".join(parts)


def unreadable_record(submission: Submission, plan: Plan, lab: str, sandbox: str) -> Record:
    """Zero points on every check, each with the reason the submission could not be read."""
    rows = [Row(submission.student, lab, c.check_id, 0, c.points, False, submission.problem,
                0.0, "", sandbox) for c in plan.checks]
    feedback = [Feedback(c.check_id, 0, c.points, False, submission.problem,
                         PUBLIC_NOT_RUN)
                for c in plan.checks]
    notes = [f"{submission.problem}: {submission.detail or 'nothing in it could be graded'}"]
    return Record(submission.student, printable(str(submission.path)), submission.sha256, lab,
                  sandbox,
                  0.0, rows, feedback, [submission.problem], notes)


def judge(submission: Submission, plan: Plan, reference_plan: Plan, expected: dict,
          results: list[StepResult] | None, lab: str, sandbox: str, seconds: float) -> Record:
    """Rows, feedback and flags for a submission whose plan ran (``results``: one per step;
    ``None`` when nothing needed running) against the reference's ``expected`` payloads."""
    flags, notes = [], []
    solution_sources = {step.cell_id: step.source for step in reference_plan.steps
                        if step.kind == "solution"}
    namespace = {}
    for step in reference_plan.steps:
        if step.kind in ("check", "context", "setup"):
            namespace.update(imported_names(step.source))
    for match in submission.matches.values():  # what one exercise imports, the next can use
        namespace.update(imported_names(match.source or ""))
    for identifier, match in submission.matches.items():
        if match.method not in ("id", "missing"):
            notes.append(f"exercise cell {identifier} matched by {match.method}")
        if match.source and not match.stub:
            related = [c for c in plan.checks if identifier in c.solutions]
            sources = [reference_plan.steps[i].source for c in related
                       for i in (c.public_step, c.hidden_step)]
            flags += [f"{identifier}: {flag}" for flag in
                      shortcut_flags(match.source, solution_sources.get(identifier, ""), sources,
                                     namespace)]
    rows, feedback = [], []
    for check in reference_plan.checks:  # the same cells and steps as the submission's plan
        for identifier in check.solutions:
            result = results[plan.solution_steps[identifier]] if results else None
            if result is not None and _crash(result):
                notes.append(f"exercise cell {identifier}: {_crash(result)}; it was skipped and "
                             "the other cells run again in a fresh kernel")
        passed, reason = False, _own_reason(check, submission)
        hidden = results[check.hidden_step] if results else None
        if reason is None and hidden is not None:
            if hidden.status == "ok" and len(hidden.values) == 1:
                passed = payload_matches(expected[check.check_id], hidden.values[0])
            if not passed:
                reason = (_dependency_reason(check, submission, plan, results)
                          or _hidden_reason(hidden, flags, check.check_id))
        elif reason is None:
            reason = "not run"
        reason = "" if passed else reason
        spent = 0.0
        if results:
            spent = sum(results[plan.solution_steps[s]].seconds for s in check.solutions)
            spent += results[check.hidden_step].seconds
        row_flags = "; ".join(f for f in flags if f.split(":")[0] in check.solutions
                              or f.startswith(check.check_id))
        rows.append(Row(submission.student, lab, check.check_id, check.points if passed else 0,
                        check.points, passed, reason, round(spent, 3), row_flags, sandbox))
        public_result = results[check.public_step] if results else None
        detail = _detail(check, submission, plan, results, expected, passed, reason)
        feedback.append(Feedback(check.check_id, check.points if passed else 0, check.points,
                                 passed, reason, printable(_public_text(public_result)),
                                 list(check.solutions), detail,
                                 public_result is not None and public_result.status == "ok"))
    return Record(submission.student, printable(str(submission.path)), submission.sha256, lab,
                  sandbox,
                  round(seconds, 3), rows, feedback, flags, sorted(set(notes)))
