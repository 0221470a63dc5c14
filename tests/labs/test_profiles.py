import pytest

from segcourse.labs import detect_profile
from segcourse.labs.environment import accelerators, environment_report, format_report


@pytest.mark.parametrize("value, name", [("cpu", "cpu"), ("GPU", "gpu"), (" gpu ", "gpu")])
def test_the_profile_can_be_forced(value, name):
    profile = detect_profile({"SEGCOURSE_PROFILE": value})
    assert profile.name == name and "forced" in profile.reason
    assert profile.pick(cpu=2, gpu=30) == (2 if name == "cpu" else 30)


def test_a_wrong_profile_name_is_refused():
    with pytest.raises(ValueError, match="'tpu' is not a profile; set it to one of cpu, gpu"):
        detect_profile({"SEGCOURSE_PROFILE": "tpu"})


def test_the_machine_gets_the_profile_of_what_the_backend_sees():
    """The CPU profile on a CPU machine (CI); the GPU profile, naming the devices, on the GPU
    runner (.ci/gpu runs these tests too)."""
    found = accelerators()
    profile = detect_profile({})
    if found:
        assert (profile.name, profile.reason) == ("gpu", f"found {', '.join(found)}")
    else:
        assert (profile.name, profile.reason) == ("cpu", "no GPU found")


def test_environment_report_names_backend_and_devices():
    report = environment_report()
    assert report["backend"].startswith("tensorflow 2.")
    assert report["keras"].startswith("3.")
    text = format_report(report)
    found = accelerators()
    assert f"accelerators  {', '.join(found) if found else 'none (CPU only)'}" in text


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


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 avx {extra} fma
"""


def test_cpuinfo_tells_avx2_by_its_exact_flag():
    from segcourse.labs.environment import cpuinfo_has_avx2

    assert cpuinfo_has_avx2(CPUINFO.format(extra="avx2 avx512f")) is True
    # avx512f alone, or a flag that merely contains the letters, is not AVX2.
    assert cpuinfo_has_avx2(CPUINFO.format(extra="avx512f avx2_fake")) is False
    assert cpuinfo_has_avx2("processor\t: 0\nBogoMIPS\t: 50.00\n") is None  # no flags line


@pytest.mark.parametrize("avx, avx2, answer", [
    (True, True, True), (True, False, False),
    (False, False, None),  # a Windows too old for the flags: TensorFlow's wheels need AVX
])
def test_windows_feature_flags_tell_avx2_or_that_they_cannot(avx, avx2, answer):
    from segcourse.labs.environment import windows_has_avx2

    assert windows_has_avx2(avx, avx2) is answer


@pytest.mark.parametrize("machine, avx2, cap, setting", [
    ("x86_64", True, None, "1"),      # oneDNN on, where TensorFlow leaves it off below AVX-512
    ("AMD64", True, "avx2", "1"),     # Windows' name; a cap at AVX2 keeps right gradients
    ("x86_64", True, "AVX512_CORE", "1"),
    ("x86_64", False, None, "0"),     # no AVX2: oneDNN's gradients drift (onednn_isa.md)
    ("x86_64", True, " avx ", "0"),   # held below AVX2 by ONEDNN_MAX_CPU_ISA
    ("x86_64", True, "SSE41", "0"),
    ("x86_64", None, None, None),     # cannot tell: TensorFlow's own default
    ("aarch64", True, None, None),    # not x86: oneDNN is TensorFlow's business there
    ("arm64", None, None, None),
])
def test_onednn_is_on_only_where_its_kernels_have_avx2(machine, avx2, cap, setting):
    from segcourse.labs.environment import onednn_setting

    assert onednn_setting(machine, avx2, cap) == setting


def test_prepare_tensorflow_leaves_onednn_off_below_avx2_and_an_explicit_value_alone():
    import os
    import platform
    import subprocess
    import sys

    from segcourse.labs.environment import cpu_has_avx2

    if platform.machine().lower() not in ("x86_64", "amd64") or not cpu_has_avx2():
        pytest.skip("an x86-64 CPU with AVX2 is needed to see both settings")
    code = ("import os; from segcourse.labs.environment import prepare_tensorflow; "
            "prepare_tensorflow(); print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    clean = {key: value for key, value in os.environ.items()
             if key not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}

    def setting(**env):
        return subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                              capture_output=True, text=True, check=True).stdout.strip()

    assert setting() == "1"
    assert setting(ONEDNN_MAX_CPU_ISA="AVX") == "0"
    assert setting(ONEDNN_MAX_CPU_ISA="AVX", TF_ENABLE_ONEDNN_OPTS="1") == "1"


@pytest.mark.parametrize("processes, cores, share", [
    (1, 2, None), (2, 2, "1"), (3, 2, "1"), (2, 16, "8"), (3, 16, "5")])
def test_processes_at_once_share_the_cores_and_one_alone_gets_tensorflows_default(
        processes, cores, share):
    from segcourse.labs.environment import thread_settings

    expected = {} if share is None else {"TF_NUM_INTRAOP_THREADS": share,
                                         "TF_NUM_INTEROP_THREADS": share}
    assert thread_settings(processes, cores) == expected


def test_the_test_workers_keep_to_their_share_of_the_cores():
    """tests/conftest.py: each pytest-xdist worker, and every kernel it starts, sizes TensorFlow's
    pools for its share; a plain pytest (one process) leaves TensorFlow's default."""
    import os

    from segcourse.labs.environment import thread_settings

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))
    for name, value in thread_settings(workers).items():
        assert os.environ[name] == value
