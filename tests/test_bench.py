import json
from pathlib import Path

import pytest

from segcourse.bench import report


def test_the_report_lists_ceiling_generator_and_training_rates(tmp_path):
    text = report(models_to_time=("plain",), out=tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == text
    assert "float32 matmul" in text and "GFLOP/s" in text
    assert "shapes generator, 64×64" in text and "training plain (cpu preset)" in text


def test_the_grading_report_grades_a_made_class_side_by_side(tmp_path):
    from segcourse.bench import grading_report

    text = grading_report(count=10, jobs=(1, 2), out=tmp_path / "grading.md")
    figures = json.loads((tmp_path / "grading.json").read_text())
    assert figures["class"] == {"solved": 6, "half solved": 2, "untouched": 1, "unreadable": 1}
    # 6 × 7 points, and the half-solved ones earn exercise 1 only (exercise 3 needs exercise 2)
    assert [run["points"] for run in figures["runs"]] == [46, 46]
    assert "GFLOP/s" in text and "| 2 | 10 |" in text


@pytest.mark.parametrize("flags, written", [
    (["--architectures"], {"report": "speed.md", "architecture_report": "architectures.md"}),
    (["--grading"], {"grading_report": "grading.md"}),
])
def test_every_report_goes_where_out_says(flags, written, tmp_path, monkeypatch, capsys):
    import segcourse.bench
    from segcourse.cli import main

    seen = {}
    for name in ("report", "architecture_report", "grading_report"):
        def fake(*args, out=None, name=name, **kwargs):
            seen[name] = Path(out if out is not None else args[-1])
            return name
        monkeypatch.setattr(segcourse.bench, name, fake)
    assert main(["bench", "--out", str(tmp_path / "speed.md"), *flags]) == 0
    assert seen == {name: tmp_path / file for name, file in written.items()}
