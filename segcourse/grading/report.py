"""What a grading run writes: grades.csv / grades.json, feedback/STUDENT.md, summary.md + PNG.

Each file is rewritten whole and atomically (a temporary file, then a rename) after every
submission, so a crash or Ctrl-C leaves the last complete state, never half a file.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import os
import re
from dataclasses import asdict
from pathlib import Path

from segcourse.grading.outcome import COLUMNS, Record

RESULTS = "results.jsonl"


def _atomic_write(path: Path, text: str) -> None:
    # the temporary file's name is short, as the final name may already be as long as a file
    # system allows (255 bytes); a lone surrogate that slipped through is written escaped
    name = hashlib.sha1(path.name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    temporary = path.with_name(f".{name}.tmp")
    temporary.write_text(text, encoding="utf-8", errors="backslashreplace")
    os.replace(temporary, path)


def load_records(out: Path) -> dict[str, Record]:
    """The records of a grading folder (the last line wins for a student); a torn last line
    (a crash while writing) is ignored."""
    records = {}
    path = Path(out) / RESULTS
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = Record.from_json(json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue
            records[record.student] = record
    return records


def append_record(out: Path, record: Record) -> None:
    """Add one graded submission to results.jsonl, flushed to disk before returning."""
    with open(Path(out) / RESULTS, "a", encoding="utf-8") as results:
        results.write(json.dumps(record.to_json()) + "\n")
        results.flush()
        os.fsync(results.fileno())


def _cell(value):
    """A CSV cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(header, rows) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return text.getvalue()


def write_tables(out: Path, records: dict[str, Record]) -> None:
    """grades.csv / grades.json (a row per student and check) and totals.csv (per student)."""
    rows = [row for student in sorted(records) for row in records[student].rows]
    _atomic_write(Path(out) / "grades.csv",
                  _csv(COLUMNS, ([getattr(r, c) for c in COLUMNS] for r in rows)))
    _atomic_write(Path(out) / "grades.json", json.dumps([asdict(r) for r in rows], indent=1))
    _atomic_write(Path(out) / "totals.csv", _csv(
        ("student", "points", "max_points", "passed_checks", "checks", "file", "flags"),
        ((r.student, r.points, r.max_points, sum(x.passed for x in r.rows), len(r.rows),
          r.file, "; ".join(r.flags)) for r in (records[s] for s in sorted(records)))))


def safe_name(student: str) -> str:
    """A file name for a student's feedback: the id itself when it is a safe name of at most
    120 bytes, else a cleaned id cut to 100 bytes, with a short hash (so "a b" and "a_b" never share
    a file, and a 255-byte id still leaves room for ".md")."""
    # "surrogatepass": an id read back from an older results.jsonl may hold a lone surrogate
    cleaned = re.sub(r"[^\w.-]", "_", student).lstrip(".") or "_"
    if cleaned == student and len(student.encode("utf-8", "surrogatepass")) <= 120:
        return student
    digest = hashlib.sha1(student.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    short = cleaned.encode("utf-8", "surrogatepass")[:100].decode("utf-8", "ignore")
    return f"{short}-{digest}"


def md(text) -> str:
    """Text that cannot break a Markdown line or table: control characters become spaces,
    pipes and backticks are escaped."""
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(text))
    for plain, escaped in (("|", "\\|"), ("`", "\\`"), ("[", "\\["), ("]", "\\]"),
                           ("<", "&lt;")):
        text = text.replace(plain, escaped)
    return text


def feedback_markdown(record: Record) -> str:
    """A student's feedback page: points per check and the reason for each lost point."""
    lines = [f"# {record.lab}: feedback for {md(record.student)}", "",
             f"**{record.points} / {record.max_points} points**", ""]
    for item in record.feedback:
        mark = "passed" if item.passed else "not passed"
        lines.append(f"## {item.check}: {item.points} / {item.max_points} ({mark})")
        lines.append("")
        if item.exercises:
            lines.append(f"Exercise cell(s): {', '.join(item.exercises)}.")
        if not item.passed:
            lines.append(f"Reason: **{md(item.reason)}**.")
            if item.reason == "wrong values" and item.public_passed:
                lines.append("Your code passed the public check below, on the inputs you have, "
                             "but gave other values than the reference solution on inputs you "
                             "have not seen (the hidden check): it is right there but not in "
                             "general (other sizes, classes or edge cases).")
            elif item.reason == "wrong values":
                lines.append("Your code gave other values than the reference solution on inputs "
                             "you have not seen (the hidden check). The public check below shows "
                             "what is expected on the inputs you have.")
        if item.detail:
            lines += ["", md(item.detail)]
        lines += ["", "Public check (the inputs in your notebook):", "", "```",
                  item.public.strip().replace("```", "` ` `") or "(no output)", "```", ""]
    if record.notes:
        lines += ["## Notes", ""] + [f"- {md(note)}" for note in record.notes] + [""]
    lines += ["Only the exercise cells of your notebook were run (the rest comes from the "
              "reference); put any helper you wrote inside an exercise cell.", ""]
    return "\n".join(lines)


def write_feedback(out: Path, record: Record) -> None:
    """Write ``feedback/<student>.md`` whole."""
    folder = Path(out) / "feedback"
    folder.mkdir(exist_ok=True)
    _atomic_write(folder / f"{safe_name(record.student)}.md", feedback_markdown(record))


def _histogram(out: Path, totals: list[int], max_points: int) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(6, 3.2))
    axes.hist(totals, bins=range(0, max_points + 2), align="left", rwidth=0.85)
    axes.set_xlabel("points")
    axes.set_ylabel("students")
    axes.set_title(f"points (of {max_points}), {len(totals)} submissions")
    axes.set_xticks(range(0, max_points + 1))
    figure.tight_layout()
    figure.savefig(Path(out) / "summary_points.png", dpi=100)
    plt.close(figure)
    return "summary_points.png"


def summary_markdown(records: dict[str, Record], lab: str, picture: str | None,
                     pending: int = 0) -> str:
    """The class summary: score distribution, per-check pass rates, students to look at."""
    ordered = [records[s] for s in sorted(records)]
    waiting = (f"**{pending} submission(s) not graded yet** (the run was interrupted: run the "
               "same command again).\n\n" if pending else "")
    if not ordered:
        return f"# {lab}: grading summary\n\n{waiting}No submission graded yet.\n"
    max_points = max(r.max_points for r in ordered)
    totals = [r.points for r in ordered]
    unreadable = sum(1 for r in ordered if r.rows and r.rows[0].reason and all(
        row.reason == r.rows[0].reason for row in r.rows) and r.rows[0].reason in r.flags)
    ungraded = f" ({unreadable} of them could not be graded at all: see Flagged)" \
        if unreadable else ""
    lines = [f"# {lab}: grading summary", "", waiting.strip(),
             f"{len(ordered)} submissions; mean {sum(totals) / len(totals):.2f} of {max_points} "
             f"points; median {sorted(totals)[len(totals) // 2]}; "
             f"{sum(t == max_points for t in totals)} full marks, "
             f"{sum(t == 0 for t in totals)} with none"
             f"{ungraded}.",
             ""]
    sandboxes = collections.Counter(r.sandbox for r in ordered)
    lines.append("Sandbox: " + "; ".join(f"{k} ({v})" for k, v in sandboxes.items()) + ".")
    if "none" in sandboxes:
        lines.append("**Without a sandbox a hostile notebook can read the reference and rewrite "
                     "grades: grade as root on Linux for marks that matter.**")
    lines.append("Per student: `totals.csv`; per student and check: `grades.csv`; what each "
                 "student reads: `feedback/`.")
    lines.append("")
    if picture:
        lines += [f"![points histogram]({picture})", ""]
    lines += ["## Checks", "",
              "Public ok, hidden not: submissions whose public check passed on the notebook's "
              "own inputs while the hidden check found other values than the reference's (many "
              "of them: the public check is too easy to pass, or answers were fitted to it).", "",
              "| check | points | passed | rate | public ok, hidden not | most common reasons |",
              "|---|---|---|---|---|---|"]
    checks = [row.check for row in ordered[0].rows]
    for check in checks:
        rows = [row for r in ordered for row in r.rows if row.check == check]
        passed = sum(row.passed for row in rows)
        fitted = sum(item.public_passed and item.reason == "wrong values"
                     for r in ordered for item in r.feedback if item.check == check)
        reasons = collections.Counter(row.reason for row in rows if not row.passed)
        common = ", ".join(f"{md(reason)} ({n})" for reason, n in reasons.most_common())
        lines.append(f"| {check} | {rows[0].max_points} | {passed} / {len(rows)} | "
                     f"{passed / len(rows):.0%} | {fitted} | {common} |")
    lines += ["", "## Slowest submissions", "", "| student | seconds | points |", "|---|---|---|"]
    for record in sorted(ordered, key=lambda r: -r.seconds)[:5]:
        lines.append(f"| {md(record.student)} | {record.seconds:.1f} | {record.points} |")
    flagged = [r for r in ordered if r.flags]
    lines += ["", "## Flagged for the instructor", ""]
    if not flagged:
        lines.append("Nothing flagged.")
    for record in flagged:
        lines.append(f"- **{md(record.student)}**: " + "; ".join(map(md, record.flags)))
    lines += ["", "## Students", "", "| student | points | reasons |", "|---|---|---|"]
    for record in ordered:
        reasons = sorted({row.reason for row in record.rows if not row.passed})
        lines.append(f"| {md(record.student)} | {record.points} / {record.max_points} | "
                     f"{md(', '.join(reasons))} |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, records: dict[str, Record], lab: str, pending: int = 0) -> None:
    """Write summary.md whole, with a histogram of the totals when there are any."""
    picture = None
    if records:
        max_points = max(r.max_points for r in records.values())
        picture = _histogram(out, [r.points for r in records.values()], max_points)
    _atomic_write(Path(out) / "summary.md", summary_markdown(records, lab, picture, pending))


def table(record: Record) -> str:
    """A submission's result as a terminal table (the student-side preview)."""
    width = max([len(item.check) for item in record.feedback] + [5])
    lines = [f"{record.student} ({record.lab}): {record.points} / {record.max_points} points",
             "", f"{'check':<{width}}  points  result"]
    for item in record.feedback:
        result = "passed" if item.passed else item.reason
        lines.append(f"{item.check:<{width}}  {item.points:>2} / {item.max_points:<2}  {result}")
        for line in item.public.strip().splitlines()[:8]:
            lines.append(f"{'':<{width}}    | {line[:150]}")
    if record.notes:
        lines += [""] + [f"note: {note}" for note in record.notes]
    if record.flags:
        lines += [""] + [f"flag: {flag}" for flag in record.flags]
    return "\n".join(lines)
