"""What the labs run on: versions, Keras backend, devices. Printed by every lab's setup cell."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

ISAS_BELOW_AVX2 = ("SSE41", "AVX")  # ONEDNN_MAX_CPU_ISA values that hold oneDNN below AVX2
X86_64 = ("x86_64", "amd64")  # platform.machine(), lower-cased: Linux and macOS, Windows


def prepare_tensorflow() -> None:
    """Settings TensorFlow reads once, when it is imported (so call this first); an explicit
    value of either variable is left alone.

    - ``TF_CPP_MIN_LOG_LEVEL=3`` hides the C++ start-up log lines (only 3 hides them in 2.21).
    - ``TF_ENABLE_ONEDNN_OPTS=1`` on x86-64 CPUs with AVX2 (:func:`onednn_setting`): TensorFlow
      turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512-class features.
      Elsewhere its Eigen kernels spend most of a small model's training step spinning in the
      OS: on a 2-core AMD EPYC the CPU-profile U-Net took 18.5 s per 1,024 pictures (46 s of
      its 104 CPU seconds in the kernel) against 6.5 s with oneDNN (3 s), the same recipe,
      medians of two alternating runs. oneDNN also runs dilated transposed convolutions, which
      the Eigen kernel refuses.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    setting = onednn_setting(platform.machine(), cpu_has_avx2(),
                             os.environ.get("ONEDNN_MAX_CPU_ISA"))
    if setting is not None:
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", setting)


def thread_settings(processes: int, cores: int | None = None) -> dict[str, str]:
    """TensorFlow's thread-pool sizes (``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS``)
    for one of ``processes`` TensorFlow processes that share this machine's cores at once (pytest
    workers, the grader's jobs): its share of the cores, at least one; ``{}`` for one process,
    for which TensorFlow sizes both pools for every core. Each of two processes sizing its pools
    for both of 2 cores runs slower than each keeping to one: two copies of lab 04 under nbval
    at once took 43.4 s so and 38.1 s with one thread each (``benchmarks/shared_cores.md``),
    lab 06's 128 and 92 s. Set them before TensorFlow starts; an explicit value is the
    caller's to keep."""
    if processes <= 1:
        return {}
    share = str(max(1, (cores or usable_cores()) // processes))
    return {"TF_NUM_INTRAOP_THREADS": share, "TF_NUM_INTEROP_THREADS": share}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def onednn_setting(machine: str, has_avx2: bool | None, isa_cap: str | None = None
                   ) -> str | None:
    """``TF_ENABLE_ONEDNN_OPTS`` as segcourse sets it: ``"1"`` on an x86-64 CPU with AVX2;
    ``"0"`` on one without, or where ``ONEDNN_MAX_CPU_ISA`` holds oneDNN below AVX2; ``None``
    (TensorFlow's own default) elsewhere or where AVX2 cannot be told. Below AVX2 oneDNN's
    kernels compute gradients wrong enough to train worse: in ``benchmarks/onednn_isa.md``
    one training step of the small U-Net with oneDNN held to AVX differs from float64 by 0.1 %
    (median over the weight tensors; 0.8 % at most), where TensorFlow's Eigen kernels and
    oneDNN at AVX2 or AVX-512 stay within 0.002 %; and the README's main job, in one run so,
    reached a test mIoU of 0.851, against 0.914-0.923 in four runs with AVX2 or AVX-512 and
    0.931 with Eigen on one core held to AVX (13.7 minutes). Eigen is slower, and right."""
    if machine.lower() not in X86_64 or has_avx2 is None:
        return None
    below_avx2 = (isa_cap or "").strip().upper() in ISAS_BELOW_AVX2
    return "1" if has_avx2 and not below_avx2 else "0"


def cpu_has_avx2() -> bool | None:
    """Whether this CPU has AVX2 (Linux: /proc/cpuinfo; macOS: sysctl; Windows:
    ``IsProcessorFeaturePresent``); ``False`` on a CPU that is not x86-64 (nothing is asked);
    ``None`` where it cannot be told."""
    if platform.machine().lower() not in X86_64:
        return False
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
        return cpuinfo_has_avx2(text)
    if sys.platform == "darwin":
        import subprocess

        try:
            features = subprocess.run(["sysctl", "-n", "machdep.cpu.leaf7_features"],
                                      capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return "AVX2" in features.upper().split() if features.strip() else None
    if sys.platform == "win32":
        import ctypes

        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        return windows_has_avx2(bool(present(39)), bool(present(40)))
    return None


def windows_has_avx2(avx: bool, avx2: bool) -> bool | None:
    """What Windows' ``PF_AVX_INSTRUCTIONS_AVAILABLE`` (39) and
    ``PF_AVX2_INSTRUCTIONS_AVAILABLE`` (40) tell. Windows releases older than these flags
    report them false whatever the CPU has; TensorFlow's wheels need AVX, so no AVX reported
    means the answer is unknown (``None``)."""
    if avx2:
        return True
    return False if avx else None


def cpuinfo_has_avx2(text: str) -> bool | None:
    """Whether /proc/cpuinfo's text lists AVX2 among the CPU's flags (``None`` when it lists no
    flags at all: not an x86 CPU's cpuinfo)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return "avx2" in value.split()
    return None


def full_float32() -> None:
    """Compute float32 as float32 on every GPU, as on a CPU: no TensorFloat-32 (10-bit mantissa)
    in convolutions and matrix products, which TensorFlow and JAX use by default on Ampere and
    newer GPUs (Colab's A100 and L4; its T4 has none).

    Measured on an H200 (Keras 3.15 on JAX, ``tests/test_jax_backend.py``'s models at 32 px):
    with TF32 the registered models' outputs differed from the CPU's by up to 2e-3 (FCN-8s) and,
    where a max-pooling arg-max flipped, 0.04-0.05 on outputs of scale 0.3-0.7 (SegNet,
    DeconvNet); in full float32 every model and layer agreed within 2.2e-6. A lab's checks must
    print the same on any machine; and a GPU section computes no slower than on the T4 it was
    sized for (an A100's float32 peak is 19.5 TFLOP/s, a T4's 8.1).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
    elif backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def accelerators() -> list[str]:
    """Names of the GPUs (or TPUs) the active Keras backend can use; empty on a CPU machine."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name.replace("/physical_device:", "") for d in
                tf.config.list_physical_devices("GPU") + tf.config.list_physical_devices("TPU")]
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return []


def environment_report() -> dict:
    """Versions and devices as a dict (the values vary by machine; never compare them)."""
    import keras

    import segcourse

    backend = keras.backend.backend()
    backend_distribution = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    backend_version = _version(backend_distribution) or _version("tensorflow-cpu")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "segcourse": segcourse.__version__,
        "keras": keras.__version__,
        "backend": f"{backend} {backend_version or ''}".strip(),
        "accelerators": accelerators() or ["none (CPU only)"],
        "colab": "google.colab" in sys.modules,
    }


def format_report(report: dict) -> str:
    """The environment report as aligned ``key  value`` lines."""
    width = max(map(len, report))
    lines = []
    for key, value in report.items():
        value = ", ".join(value) if isinstance(value, list) else value
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
