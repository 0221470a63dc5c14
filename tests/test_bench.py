import json
from pathlib import Path

import pytest

from segcourse.bench import report

ROOT = Path(__file__).resolve().parents[1]

SECTIONS = ("## Machine ceiling", "## Training", "## Inference", "## Input pipeline",
            "Is training input-bound?", "## Where the time goes, layer by layer",
            "## Metric update cost", "## Dense CRF")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run of every phase: one small model, 32×32, batch 4, few steps."""
    out = tmp_path_factory.mktemp("bench") / "report.md"
    text = report(models_to_time=("plain",), out=out, size=32, batch=4, steps=2, repeats=1,
                  crf_cases=((16, 2), (24, 3)))
    return text, json.loads(out.with_suffix(".json").read_text()), out


def _tables(text):
    """{the title of the section: its tables, each a list of {header: cell}}."""
    tables, title, rows = {}, None, None
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            title = line.lstrip("# ")
        elif line.startswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if rows is None:
                header, rows = cells, []
            elif set(line) - set("|-"):
                rows.append(dict(zip(header, cells, strict=True)))
        elif rows is not None:
            tables.setdefault(title, []).append(rows)
            rows = None
    return tables


def test_the_report_has_every_section_and_writes_what_it_returns(tiny):
    text, figures, out = tiny
    assert out.read_text() == text
    for section in SECTIONS:
        assert section in text
    assert {"machine", "settings", "ceiling", "training", "pipeline", "layers",
            "metrics", "crf"} <= set(figures)
    assert figures["machine"]["load_average_start"] >= 0 and figures["machine"]["cores"] >= 1


def test_every_absolute_figure_has_the_ceilings_beside_it(tiny):
    text, figures, _ = tiny
    ceiling = figures["ceiling"]
    both = f"{ceiling['conv_gflops']:.1f} / {ceiling['matmul_gflops']:.1f} GFLOP/s"
    tables = _tables(text)
    figured = [rows for title, found in tables.items() if title != "Machine ceiling"
               for rows in found]
    # training, inference, pipeline, input-bound, layers (three tables: batch norm's), metrics,
    # the dense CRF
    assert len(figured) == 9
    for rows in figured:
        assert rows and all(row["ceilings conv / matmul"] == both for row in rows)
    # the ceilings are the higher of the two probes of the run
    for key in ("matmul_gflops", "conv_gflops"):
        assert ceiling[key] == max(ceiling["start"][key], ceiling["end"][key]) > 0


def test_json_and_markdown_agree(tiny):
    text, figures, _ = tiny
    tables = _tables(text)
    [crf] = tables["Dense CRF"]
    assert [(row["picture"], int(row["classes"]), float(row["seconds per picture"]))
            for row in crf] == [(f"{f['side']}×{f['side']}", f["classes"], round(f["seconds"], 3))
                                for f in figures["crf"]]
    assert all(f["seconds"] > 0 for f in figures["crf"])
    [probes] = tables["Machine ceiling"]
    assert [float(row["ceiling, GFLOP/s"]) for row in probes] == [
        figures["ceiling"]["matmul_gflops"], figures["ceiling"]["conv_gflops"]]
    [training] = tables["Training"]
    assert len(training) == len(figures["training"]) == 4
    for row, measured in zip(training, figures["training"], strict=True):
        assert (row["model"], row["jit_compile"], row["op determinism"]) == (
            measured["model"], "on" if measured["jit_compile"] else "off",
            "on" if measured["deterministic"] else "off")
        if "pictures_per_s" in measured:
            assert float(row["pictures/s"]) == measured["pictures_per_s"]
            assert float(row["GFLOP/s"]) == measured["training_gflops"]
            assert float(row["of conv ceiling"]) == measured["training_of_conv_ceiling"]
            assert float(row["of matmul ceiling"]) == measured["training_of_matmul_ceiling"]
    [inference] = tables["Inference"]
    assert [float(row["pictures/s"]) for row in inference] == [
        m["inference_pictures_per_s"] for m in figures["training"] if "pictures_per_s" in m]
    pipeline, bound = tables["Input pipeline"]
    assert float(pipeline[0]["pictures/s"]) == figures["pipeline"]["pictures_per_s"]
    assert [row["input-bound?"] for row in bound] == [
        v["input_bound"] for v in figures["pipeline"]["input_bound"]]
    [metrics] = tables["Metric update cost"]
    for row, update in zip(metrics, figures["metrics"]["updates"], strict=True):
        assert row["metric"] == update["metric"]
        assert int(row["eager µs"]) == update["eager_microseconds"] > 0
        assert int(row["tf.function µs"]) == update["tf_function_microseconds"] > 0
        assert float(row["mIoU"]) == pytest.approx(update["miou"], abs=5e-7)


def test_every_variant_is_measured_or_says_why_not(tiny):
    _, figures, _ = tiny
    variants = {(m["jit_compile"], m["deterministic"]): m for m in figures["training"]}
    assert set(variants) == {(False, False), (True, False), (False, True), (True, True)}
    assert "Keras" in variants[True, True]["refused"]  # no XLA under op determinism
    for key in ((False, False), (True, False), (False, True)):
        assert "error" not in variants[key] and variants[key]["pictures_per_s"] > 0
    # only segcourse train's setting is also timed from one cached batch
    assert [("cached_pictures_per_s" in m) for m in variants.values()] == [
        False, False, True, False]


def test_fractions_of_the_ceilings_are_sane_and_follow_the_arithmetic(tiny):
    _, figures, _ = tiny
    ceiling = figures["ceiling"]
    for measured in figures["training"]:
        if "pictures_per_s" not in measured:
            continue
        # 3 forward passes of 2 FLOPs per MAC a training picture, 1 an inference picture
        for kind, rate, passes in (("training", "pictures_per_s", 3),
                                   ("inference", "inference_pictures_per_s", 1)):
            gflops = measured[rate] * passes * 2 * measured["macs_per_picture"] / 1e9
            assert measured[f"{kind}_gflops"] == pytest.approx(gflops, abs=0.2)
            for probe in ("conv", "matmul"):
                fraction = measured[f"{kind}_of_{probe}_ceiling"]
                assert 0 < fraction < 1.5
                assert fraction == pytest.approx(gflops / ceiling[f"{probe}_gflops"], abs=2e-3)


def test_both_metrics_give_the_same_miou(tiny):
    text, figures, _ = tiny
    first, second = figures["metrics"]["updates"]
    assert {first["metric"], second["metric"]} == {"ConfusionMatrixMetric",
                                                   "keras.metrics.MeanIoU"}
    assert first["miou"] == pytest.approx(second["miou"], abs=1e-6)
    assert 0 < first["miou"] < 1
    assert figures["metrics"]["same_miou"] and "Same mIoU: yes" in text


@pytest.mark.parametrize("arguments, message", [
    ({"skip": ["trainning"]}, "skip takes"),
    ({"steps": 0}, "steps must be"),
    ({"models_to_time": ("unnet",)}, "unnet"),
])
def test_bad_arguments_are_refused_before_any_timing(arguments, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        report(out=tmp_path / "report.md", **arguments)
    assert not list(tmp_path.iterdir())


def test_the_grading_report_grades_a_made_class_side_by_side(tmp_path):
    from segcourse.bench import grading_report

    text = grading_report(count=10, jobs=(1, 2), out=tmp_path / "grading.md")
    figures = json.loads((tmp_path / "grading.json").read_text())
    assert figures["class"] == {"solved": 6, "half solved": 2, "untouched": 1, "unreadable": 1}
    # 6 × 7 points, and the half-solved ones earn exercises 1 and 3 (2 + 1 points: exercise 3
    # counts with segcourse.metrics, so the missing exercise 2 costs it nothing)
    assert [run["points"] for run in figures["runs"]] == [48, 48]
    assert "GFLOP/s" in text and "| 2 | 10 |" in text


@pytest.mark.parametrize("flags, written", [
    (["--architectures"], {"report": "speed.md", "architecture_report": "architectures.md"}),
    (["--grading"], {"grading_report": "grading.md"}),
    (["--labs"], {"lab_times_report": "labs.md"}),
    (["--lab-grades"], {"lab_grades_report": "lab_grades.md"}),
])
def test_every_report_goes_where_out_says(flags, written, tmp_path, monkeypatch, capsys):
    import segcourse.bench
    from segcourse.cli import main

    seen = {}
    for name in ("report", "architecture_report", "grading_report", "lab_times_report",
                 "lab_grades_report"):
        def fake(*args, out=None, name=name, **kwargs):
            seen[name] = Path(out if out is not None else args[-1])
            return name
        monkeypatch.setattr(segcourse.bench, name, fake)
    assert main(["bench", "--out", str(tmp_path / "speed.md"), *flags]) == 0
    assert seen == {name: tmp_path / file for name, file in written.items()}


def test_the_command_passes_its_options_on(monkeypatch, capsys):
    import segcourse.bench
    from segcourse.cli import main

    seen = {}
    monkeypatch.setattr(segcourse.bench, "report",
                        lambda *args, **kwargs: seen.update(args=args, **kwargs) or "")
    assert main(["bench", "--models", "unet", "--steps", "2", "--repeats", "5",
                 "--skip", "xla", "metrics"]) == 0
    assert seen == {"args": (["unet"],), "out": "benchmarks/report.md", "steps": 2,
                    "repeats": 5, "skip": ["xla", "metrics"]}
    with pytest.raises(SystemExit) as usage:
        main(["bench", "--skip", "nothing"])
    assert usage.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.slow  # about 3 minutes: every lab's reference run, sandboxed
def test_every_reference_earns_all_its_points_and_its_untouched_student_version_none(tmp_path):
    """What segcourse grade gives each lab (the audits asked for the evidence): the reference's
    own solutions all the points its checks give, the student version as built none, and the
    same with its stubs run none; and the public checks a student sees pass on the first and
    run and fail on the last (no "ok" for code never written). Sandboxed as root, else in the
    grader's fallback."""
    from segcourse.bench import lab_grades_report
    from segcourse.labs.catalog import LABS

    notebooks = [ROOT / lab.notebook for lab in LABS if lab.available]
    text = lab_grades_report(notebooks, out=tmp_path / "lab_grades.md")
    rows = json.loads((tmp_path / "lab_grades.json").read_text())["labs"]
    assert len(rows) == 15 and all(row["max_points"] >= 5 for row in rows)
    assert [(row["reference"], row["untouched"], row["stubs_run"]) for row in rows] == [
        (row["max_points"], 0, 0) for row in rows]
    assert [(row["reference_public_ok"], row["stubs_public_ok"], row["stubs_public_ran"])
            for row in rows] == [(row["checks"], 0, row["checks"]) for row in rows]
    assert "Every reference earns all its points and passes every public check" in text
    with pytest.raises(ValueError, match="no notebook at .*missing.ipynb"):
        lab_grades_report([tmp_path / "missing.ipynb"], out=tmp_path / "x.md")


def test_the_lab_times_report_runs_each_notebook_under_nbval(tmp_path):
    import nbformat

    from segcourse.bench import lab_times_report

    good, bad = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    good.cells = [nbformat.v4.new_code_cell("print('ok')", execution_count=1, metadata={
        "tags": ["nbval-check-output"]}, outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="ok\n")])]
    bad.cells = [nbformat.v4.new_code_cell("print('ok')", execution_count=1, metadata={
        "tags": ["nbval-check-output"]}, outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="not ok\n")])]
    nbformat.write(good, tmp_path / "good.ipynb")
    nbformat.write(bad, tmp_path / "bad.ipynb")
    text = lab_times_report([tmp_path / "good.ipynb", tmp_path / "bad.ipynb"],
                            out=tmp_path / "labs.md")
    figures = json.loads((tmp_path / "labs.json").read_text())
    assert [(Path(r["notebook"]).name, r["passed"]) for r in figures["labs"]] == [
        ("good.ipynb", True), ("bad.ipynb", False)]
    assert all(r["seconds"] > 0 for r in figures["labs"])
    assert "1 passed" in figures["labs"][0]["summary"] and "failed" in figures["labs"][1]["summary"]
    assert text.count("GFLOP/s |") == 2 and (tmp_path / "labs.md").read_text() == text
    with pytest.raises(ValueError, match="no notebook at .*missing.ipynb"):
        lab_times_report([tmp_path / "missing.ipynb"], out=tmp_path / "x.md")
