from segcourse.bench import report


def test_the_report_lists_ceiling_generator_and_training_rates(tmp_path):
    text = report(models_to_time=("plain",), out=tmp_path / "report.md")
    assert (tmp_path / "report.md").read_text() == text
    assert "float32 matmul" in text and "GFLOP/s" in text
    assert "shapes generator, 64×64" in text and "training plain (cpu preset)" in text
