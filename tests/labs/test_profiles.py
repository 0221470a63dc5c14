import pytest

from segcourse.labs import detect_profile
from segcourse.labs.environment import environment_report, format_report


@pytest.mark.parametrize("value, name", [("cpu", "cpu"), ("GPU", "gpu"), (" gpu ", "gpu")])
def test_the_profile_can_be_forced(value, name):
    profile = detect_profile({"SEGCOURSE_PROFILE": value})
    assert profile.name == name and "forced" in profile.reason
    assert profile.pick(cpu=2, gpu=30) == (2 if name == "cpu" else 30)


def test_a_wrong_profile_name_is_refused():
    with pytest.raises(ValueError, match="'tpu' is not a profile; set it to one of cpu, gpu"):
        detect_profile({"SEGCOURSE_PROFILE": "tpu"})


def test_this_cpu_machine_gets_the_cpu_profile():
    profile = detect_profile({})
    assert (profile.name, profile.reason) == ("cpu", "no GPU found")


def test_environment_report_names_backend_and_devices():
    report = environment_report()
    assert report["backend"].startswith("tensorflow 2.")
    assert report["keras"].startswith("3.")
    text = format_report(report)
    assert "accelerators  none (CPU only)" in text


def test_the_labs_compute_float32_without_tf32():
    """TF32 moved SegNet's outputs by 0.04 on an H200 (full_float32's docstring): setup() turns
    it off, so a check prints the same on a GPU as on this CPU."""
    import tensorflow as tf

    from segcourse.labs.environment import full_float32

    was = tf.config.experimental.tensor_float_32_execution_enabled()
    try:
        tf.config.experimental.enable_tensor_float_32_execution(True)
        full_float32()
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(was)
