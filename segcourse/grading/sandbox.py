"""The walls around a submission's code: Linux namespaces, a read-only view, rlimits, cgroups.

As root on Linux (a TA's machine, a CI runner) no extra software is needed:

- the grading *zygote* (:mod:`segcourse.grading.zygote`) enters a private mount, network, IPC
  and UTS namespace once: the paths to hide (the reference's folder and its git tree, the output
  folder, every submission folder) are covered by empty tmpfs, with the Python environment bound
  back where it lives inside them; every mount is then remounted read-only; the network namespace
  has no interface up (the runner talks to the grader over inherited pipes, not sockets);
- each run forks from the zygote into a fresh PID and mount namespace: its own ``/proc``, a
  fresh size-limited tmpfs on ``/tmp`` (the only writable place, gone when the run ends), cgroup
  limits on processes and memory where the machine's cgroup filesystem is writable, rlimits on
  CPU time, file size and open files, and then every capability is dropped (``no_new_privs``),
  so it can neither remount, nor unhide, nor signal anything outside its namespace.

Where namespaces are not allowed (Colab, a laptop without root) the fallback is a process
group, a temporary directory and the rlimits, and every row of the grades says
``sandbox: none``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Hidden from every run whatever the plan: service sockets (a socket file on a read-only mount
#: still accepts connections) and home folders of other tools.
ALWAYS_HIDDEN = ("/run", "/var/run", "/home", "/mnt", "/media", "/srv")
#: Read-only inside a run's fresh /proc (writable there by uid 0 even without capabilities).
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
#: Device nodes a run gets in its own /dev; nothing else.
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class Limits:
    """What one run may use."""

    memory_bytes: int = 4 << 30
    processes: int = 64
    scratch_bytes: int = 256 << 20
    open_files: int = 512
    cpu_seconds: int = 3600


@dataclass
class SandboxPlan:
    """What the zygote hides and keeps visible (absolute paths)."""

    hide: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    def encode(s):
        return (None if s is None else s.encode())
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags),
                       encode(data)), f"mount {target}")


def keep_paths() -> list[str]:
    """What a run needs to see inside a hidden folder: the interpreter, its environment and the
    folder of every imported top-level package (an editable install lives in its checkout)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable),
             os.path.realpath(sys.executable)}
    for entry in sys.path:
        if entry and os.path.isdir(entry) and "-packages" in entry:
            paths.add(os.path.realpath(entry))
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if location and "." not in name:
            folder = os.path.dirname(os.path.realpath(location))
            paths.add(folder if os.path.basename(location).startswith("__init__.")
                      else os.path.realpath(location))
    return sorted(os.path.realpath(p) for p in paths if p and p != "/")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _mounts() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            points.append(line.split()[4].replace("\\040", " "))
    return points


def _hide(folder: str, keep: list[str], hidden: list[str]) -> None:
    """Cover ``folder`` with an empty tmpfs, then bind each kept path inside it back (never one
    that is, or holds, a hidden path: the grader's working directory, say)."""
    inside = [k for k in keep if _under(k, folder) and k != folder
              and not any(_under(h, k) for h in hidden)]
    # outermost kept paths only; each is bound whole
    inside = [k for k in inside if not any(_under(k, o) and k != o for o in inside)]
    handles = [(k, os.open(k, os.O_PATH)) for k in inside if os.path.exists(k)]
    mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path, handle in handles:
        if os.path.isdir(f"/proc/self/fd/{handle}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
        os.close(handle)


def enter_zygote_namespaces(plan: SandboxPlan) -> str:
    """Called once in the zygote: private mount / network / IPC / UTS namespaces, hidden paths,
    everything read-only. Returns a description, or ``"none"`` where namespaces are refused."""
    if sys.platform != "linux":
        return "none"
    try:
        unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS):
            return "none"
        raise
    os.chdir("/")  # a working directory inside a hidden folder would still reach into it
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    keep = sorted(set(plan.keep) | set(keep_paths()))
    hidden = sorted({os.path.realpath(p) for p in [*plan.hide, *ALWAYS_HIDDEN]
                     if os.path.isdir(p)}, key=len)
    outermost = [h for h in hidden if not any(_under(h, o) and h != o for o in hidden)]
    for folder in outermost:
        _hide(folder, keep, hidden)
    writable = []
    for point in sorted(set(_mounts()), key=len):
        if _under(point, "/proc") or _under(point, str(CGROUP_ROOT)):
            continue  # /proc is replaced per run; cgroups are attached, then hidden, per run
        try:
            mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
        except OSError:
            if not any(_under(point, h) for h in outermost):  # covered ones cannot be reached
                writable.append(point)  # said on every row: the sandbox is weaker there
    return "namespaces" + (f" (still writable: {', '.join(writable)})" if writable else "")


def run_name(pid: int) -> str:
    """A run's name (its cgroups, its scratch folder) from its process id in the grader's view."""
    return f"segcourse-run-{pid}"


def _cgroup_dirs(name: str) -> dict[str, Path]:
    """Writable cgroup folders for ``name`` under the pids and memory controllers (v1 or v2)."""
    found = {}
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2
        base = CGROUP_ROOT / name
        found = {"pids": base, "memory": base}
    else:
        for controller in ("pids", "memory"):
            if (CGROUP_ROOT / controller).is_dir():
                found[controller] = CGROUP_ROOT / controller / name
    return found


def _join_cgroups(name: str, limits: Limits) -> list[str]:
    """Put this process into cgroups that bound its processes and memory; what got bounded."""
    bounded = []
    for controller, folder in _cgroup_dirs(name).items():
        try:
            folder.mkdir(exist_ok=True)
            if controller == "pids":
                (folder / "pids.max").write_text(str(limits.processes))
            elif (folder / "memory.max").exists():
                (folder / "memory.max").write_text(str(limits.memory_bytes))
                (folder / "memory.swap.max").write_text("0")
            else:
                (folder / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            (folder / "cgroup.procs").write_text(str(os.getpid()))
            bounded.append(controller)
        except OSError:
            continue
    return bounded


def remove_cgroups(name: str, attempts: int = 10) -> None:
    """Remove a finished run's cgroup folders (they empty as its processes are reaped)."""
    import time

    for folder in set(_cgroup_dirs(name).values()):
        for _ in range(attempts):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def sweep_cgroups() -> None:
    """Remove the cgroup folders of runs whose process is gone (those a slow teardown left)."""
    for controller in ("pids", "memory", ""):
        base = CGROUP_ROOT / controller if controller else CGROUP_ROOT
        for folder in base.glob("segcourse-run-*") if base.is_dir() else ():
            pid = folder.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _drop_capabilities() -> None:
    for capability in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def set_rlimits(limits: Limits) -> None:
    bounds = [(resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_CORE, 0),
              (resource.RLIMIT_FSIZE, limits.scratch_bytes),
              (resource.RLIMIT_NOFILE, limits.open_files)]
    if os.getuid() != 0:  # a root process is exempt from RLIMIT_NPROC: cgroups do it there
        bounds.append((resource.RLIMIT_NPROC, limits.processes))
    for which, value in bounds:
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _minimal_dev() -> None:
    """A fresh /dev holding only the harmless devices (no disks, no kernel log)."""
    handles = {name: os.open(f"/dev/{name}", os.O_PATH) for name in DEVICES
               if os.path.exists(f"/dev/{name}")}
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name, handle in handles.items():
        open(f"/dev/{name}", "w").close()
        mount(f"/proc/self/fd/{handle}", f"/dev/{name}", None, MS_BIND)
        os.close(handle)
    os.makedirs("/dev/shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    mount(None, "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def cgroup_limits_available() -> bool:
    """Whether runs can be put into cgroups that bound their processes and memory."""
    probe = f"segcourse-probe-{os.getpid()}"
    try:
        return bool(_cgroup_dirs(probe)) and set(_try_cgroups(probe)) == {"pids", "memory"}
    finally:
        remove_cgroups(probe)


def _try_cgroups(name: str) -> list[str]:
    made = []
    for controller, folder in _cgroup_dirs(name).items():
        try:
            folder.mkdir(exist_ok=True)
            made.append(controller)
        except OSError:
            continue
    return made


def die_with_parent() -> None:
    """Be killed when the parent process (or the thread that started this one) ends."""
    if sys.platform == "linux":
        _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)


def enter_run(namespaced: bool, limits: Limits, cgroup: str, scratch: str) -> str:
    """In a run's process, before any submitted code: its own PID 1 world (when ``namespaced``),
    scratch, limits, no capabilities. Returns the working directory to use."""
    die_with_parent()
    if not namespaced:
        os.makedirs(scratch, exist_ok=True)
        set_rlimits(limits)
        return scratch
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            mount(path, path, None, MS_BIND)
            mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _minimal_dev()
    size = f"size={limits.scratch_bytes},mode=1777"
    for place in ("/tmp", "/dev/shm", "/var/tmp"):
        if os.path.isdir(place):
            with contextlib.suppress(OSError):
                mount("tmpfs", place, "tmpfs", MS_NOSUID | MS_NODEV, size)
    _join_cgroups(cgroup, limits)
    if CGROUP_ROOT.is_dir():
        mount("tmpfs", str(CGROUP_ROOT), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    os.makedirs("/tmp/work", exist_ok=True)
    set_rlimits(limits)
    _drop_capabilities()
    return "/tmp/work"
