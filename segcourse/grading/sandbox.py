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
#: What a run's root holds besides the Python environment (everything else is absent).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
       "nsswitch.conf", "hosts", "host.conf", "ssl", "ca-certificates", "fonts", "alternatives",
       "mime.types", "os-release", "matplotlibrc")
#: The paths bound into the zygote's root (set there; its runs inherit them by fork).
ALLOWED: list[str] = []
#: The pivot_root system call's number by processor (the C library has no wrapper for it).
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
#: Where the new root is assembled (a tmpfs is mounted over it in the zygote's own namespace).
NEW_ROOT = "/mnt" if os.path.isdir("/mnt") else "/tmp"
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
    cpu_cores: int = 1


@dataclass
class SandboxPlan:
    """What the zygote must keep out of every run's root (absolute paths)."""

    hide: list[str] = field(default_factory=list)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces; an OSError names the failure."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    """mount(2), raising an OSError that names the target."""
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


def _bind(source: str, root: str) -> None:
    """Make ``source`` appear at the same path under ``root`` (a symbolic link stays a link)."""
    target = root + source
    if os.path.islink(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(source), target)
        return
    _bind_at(source, target)


def _bind_at(source: str, target: str, read_only: bool = False) -> None:
    """Bind ``source`` (a path, or ``/proc/self/fd/N`` of a handle opened before it was
    covered) at ``target``, making the folder or empty file to mount on."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def allowed_paths(hidden: list[str]) -> list[str]:
    """What a run's root holds: the system's programs and libraries, a few files of /etc, the
    interpreter, its environment and the imported packages' folders; never a folder that is, or
    holds, or lies inside a hidden one (an editable install's package folder is bound alone)."""
    system = [p for p in SYSTEM if os.path.lexists(p)]
    config = [f"/etc/{name}" for name in ETC if os.path.lexists(f"/etc/{name}")]
    python = [p for p in keep_paths() if os.path.exists(p)]
    for path in system:
        if any(_under(h, path) for h in hidden):
            raise SandboxRefused(f"{path} holds {next(h for h in hidden if _under(h, path))}, "
                                 "which must be hidden from the runs; move it elsewhere")
    chosen = []
    for path in sorted(set(system + config + python), key=len):
        if any(_under(h, path) for h in hidden) or any(_under(path, h) and not _is_package(path)
                                                       for h in hidden):
            continue
        if not any(_under(path, c) for c in chosen):
            chosen.append(path)
    return chosen


def _is_package(path: str) -> bool:
    """An environment or a package folder (what an editable install keeps in its checkout)."""
    return (os.path.exists(os.path.join(path, "__init__.py"))
            or os.path.exists(os.path.join(path, "pyvenv.cfg")) or "-packages" in path)


class SandboxRefused(RuntimeError):
    """The sandbox cannot hide what it must; the message says why."""


def enter_zygote_namespaces(plan: SandboxPlan) -> str:
    """Called once in the zygote: private mount / network / IPC / UTS namespaces and a new root
    built from an allow-list (:func:`allowed_paths`), read-only. Returns a description, or
    ``"none"`` where namespaces are refused."""
    import platform

    if sys.platform != "linux" or platform.machine() not in PIVOT_ROOT:
        return "none"  # the calls below are known for these processors only
    try:
        unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.EINVAL, errno.ENOSYS):
            return "none"
        raise
    hidden = sorted({os.path.realpath(p) for p in plan.hide if os.path.exists(p)}, key=len)
    if "/" in hidden:
        raise SandboxRefused("a submission or the reference sits directly in / (or is a link "
                             "to a file there): hiding / hides nothing; move them into a folder")
    allowed = allowed_paths(hidden)
    ALLOWED[:] = allowed  # each run puts back those under its fresh /tmp
    os.chdir("/")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = NEW_ROOT
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for path in allowed:
        _bind(path, root)
    for place in ("proc", "dev", "sys", "tmp", "var/tmp", "old"):
        os.makedirs(f"{root}/{place}", exist_ok=True)
    mount("/sys", f"{root}/sys", None, MS_BIND | MS_REC)
    mount("/dev", f"{root}/dev", None, MS_BIND | MS_REC)  # replaced by a minimal one per run
    mount("/proc", f"{root}/proc", None, MS_BIND | MS_REC)  # replaced per run
    os.chdir(root)
    _check(_libc.syscall(PIVOT_ROOT[platform.machine()], b".", b"old"), "pivot_root")
    os.chroot(".")
    os.chdir("/")
    _check(_libc.umount2(b"/old", MNT_DETACH), "umount old root")
    os.rmdir("/old")
    writable = []
    for point in sorted(set(_mounts()), key=len):
        if _under(point, "/proc") or _under(point, str(CGROUP_ROOT)):
            continue  # /proc is replaced per run; cgroups are attached, then hidden, per run
        try:
            mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
        except OSError:
            writable.append(point)  # said on every row: the sandbox is weaker there
    return "namespaces" + (f" (still writable: {', '.join(writable)})" if writable else "")


def run_name(pid: int, zygote: int) -> str:
    """A run's name (its cgroups, its scratch folder) from its process id and its zygote's, as
    the grader sees them (the zygote's part keeps side-by-side graders out of each other's way)."""
    return f"segcourse-run-{zygote}-{pid}"


def cgroups_joined(name: str) -> bool:
    """Whether run ``name`` is bounded by its pids and memory cgroups (checked from outside)."""
    dirs = _cgroup_dirs(name)
    return {"pids", "memory"} <= set(dirs) and all(
        (dirs[c] / "cgroup.procs").exists() for c in ("pids", "memory"))


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path for ``controller`` ("" for cgroup v2), from /proc/self/cgroup."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(",") or (not controller and not names):
                return path.strip("/")
    except OSError:
        pass
    return ""


def _cgroup_dirs(name: str) -> dict[str, Path]:
    """The folders of run ``name`` under the pids, memory and cpu controllers (v1 or v2), inside
    this process's own cgroup, so that a run stays within the limits the grader was given."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2: one tree
        base = CGROUP_ROOT / _own_cgroup("") / name
        return {"pids": base, "memory": base, "cpu": base}
    found = {}
    for controller in ("pids", "memory", "cpu"):
        if (CGROUP_ROOT / controller).is_dir():
            found[controller] = CGROUP_ROOT / controller / _own_cgroup(controller) / name
    return found


def _join_cgroups(name: str, limits: Limits) -> list[str]:
    """Put this process into cgroups that bound its processes, memory and CPU; what got bounded."""
    settings = {"pids": {"pids.max": str(limits.processes)},
                "memory": {"memory.max": str(limits.memory_bytes), "memory.swap.max": "0",
                           "memory.limit_in_bytes": str(limits.memory_bytes)},
                "cpu": {"cpu.max": f"{limits.cpu_cores * 100000} 100000",
                        "cpu.cfs_quota_us": str(limits.cpu_cores * 100000)}}
    bounded = []
    for controller, folder in _cgroup_dirs(name).items():
        try:
            folder.mkdir(exist_ok=True)
            for file, value in settings[controller].items():
                if (folder / file).exists():
                    (folder / file).write_text(value)
            (folder / "cgroup.procs").write_text(str(os.getpid()))
            bounded.append(controller)
        except OSError:
            continue
    return bounded


def kill_cgroups(name: str, rounds: int = 50) -> None:
    """Kill every process of run ``name`` found in its cgroups (those that left its process
    group or cleared their parent-death signal too), until none is left."""
    import signal
    import time

    folders = set(_cgroup_dirs(name).values())
    for _ in range(rounds):
        pids = set()
        for folder in folders:
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def remove_cgroups(name: str, attempts: int = 10) -> None:
    """Kill what is left of run ``name`` and remove its cgroup folders."""
    import time

    kill_cgroups(name)
    for folder in set(_cgroup_dirs(name).values()):
        for _ in range(attempts):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def sweep_cgroups(zygote: int) -> None:
    """Kill and remove what the runs of one zygote left in their cgroups (a slow teardown)."""
    bases = {folder.parent for folder in _cgroup_dirs("x").values()}
    for base in bases:
        for folder in base.glob(f"segcourse-run-{zygote}-*") if base.is_dir() else ():
            remove_cgroups(folder.name, attempts=2)


def _drop_capabilities() -> None:
    for capability in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


#: x86-64 system calls a run may not make (EPERM): keys, namespaces, mounts, tracing, kernel
#: modules and other kernel surfaces no lab needs. ``clone`` is refused only with namespace flags;
#: ``clone3`` answers ENOSYS, so the C library falls back to ``clone``.
DENIED_SYSCALLS = {
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "setns": 308,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "reboot": 169, "syslog": 103, "acct": 163, "swapon": 167,
    "swapoff": 168, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "quotactl": 179,
    "lookup_dcookie": 212, "personality": 135, "name_to_handle_at": 303,
    "open_by_handle_at": 304}
CLONE = 56
CLONE3 = 435
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
                   | 0x10000000 | 0x02000000 | 0x00000080)  # + user, cgroup, time namespaces


def _seccomp_program() -> list[tuple[int, int, int, int]]:
    """A classic-BPF seccomp filter (x86-64) as (code, jt, jf, k) rows."""
    load_word, jump_eq, jump_ge, jump_set, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny, nosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS: another architecture's calls
    program = [(load_word, 0, 0, 4), (jump_eq, 1, 0, 0xC000003E), (ret, 0, 0, kill),
               (load_word, 0, 0, 0)]
    rest = sorted(DENIED_SYSCALLS.values())
    # layout after the syscall number is loaded:
    #   x32 check, one test per denied call, clone test, clone3 test, allow,
    #   [clone: load flags, test, allow], deny, nosys
    tests = len(rest)
    body = []
    after_tests = 1 + tests + 2  # the row index (from the x32 check) of "allow"
    deny_at = after_tests + 1 + 3
    nosys_at = deny_at + 1
    body.append((jump_ge, deny_at - 1, 0, 0x40000000))  # x32 ABI numbers: refused
    for index, number in enumerate(rest, start=1):
        body.append((jump_eq, deny_at - index - 1, 0, number))
    clone_row = 1 + tests
    body.append((jump_eq, (after_tests + 1) - clone_row - 1, 0, CLONE))
    body.append((jump_eq, nosys_at - (clone_row + 1) - 1, 0, CLONE3))
    body.append((ret, 0, 0, allow))
    body.append((load_word, 0, 0, 16))  # clone's flags (low 32 bits of the first argument)
    body.append((jump_set, deny_at - (after_tests + 2) - 1, 0, NAMESPACE_FLAGS))
    body.append((ret, 0, 0, allow))
    body.append((ret, 0, 0, deny))
    body.append((ret, 0, 0, nosys))
    assert len(body) == nosys_at + 1
    return program + body


def install_seccomp() -> bool:
    """Refuse :data:`DENIED_SYSCALLS` (and namespace-making clones) from here on. Needs
    ``no_new_privs``; x86-64 only (elsewhere nothing is installed and False returned)."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return False

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    rows = _seccomp_program()
    filters = (Filter * len(rows))(*[Filter(*row) for row in rows])
    program = Program(len(rows), filters)
    _check(_libc.prctl(22, 2, ctypes.byref(program), 0, 0), "seccomp")  # PR_SET_SECCOMP, FILTER
    return True


def set_rlimits(limits: Limits) -> None:
    """Apply the CPU, file size, open file and (not as root) process limits to this process."""
    bounds = [(resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_CORE, 0),
              (resource.RLIMIT_FSIZE, limits.scratch_bytes),
              (resource.RLIMIT_NOFILE, limits.open_files)]
    if os.getuid() != 0:  # a root process is exempt from RLIMIT_NPROC: cgroups do it there
        bounds.append((resource.RLIMIT_NPROC, limits.processes))
    for which, value in bounds:
        _soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _fresh_tmpfs(place: str, options: str) -> None:
    """A fresh, writable tmpfs on ``place``, with the allowed paths that live below it (a
    Python environment under /tmp, say) bound back, read-only."""
    inside = [p for p in ALLOWED if _under(p, place) and p != place]
    handles = [(p, os.open(p, os.O_PATH)) for p in inside if os.path.lexists(p)]
    try:
        mount("tmpfs", place, "tmpfs", MS_NOSUID | MS_NODEV, options)
    except OSError:
        return
    for path, handle in handles:
        _bind_at(f"/proc/self/fd/{handle}", path, read_only=True)
        os.close(handle)


def _minimal_dev() -> None:
    """A fresh /dev holding only the harmless devices (no disks, no kernel log)."""
    handles = {name: os.open(f"/dev/{name}", os.O_PATH) for name in DEVICES
               if os.path.exists(f"/dev/{name}")}
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=755")
    for name, handle in handles.items():
        _bind_at(f"/proc/self/fd/{handle}", f"/dev/{name}")
        os.close(handle)
    os.makedirs("/dev/shm")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    mount(None, "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def cgroup_limits_available() -> bool:
    """Whether runs can be put into cgroups that bound their processes and memory."""
    probe = f"segcourse-run-probe{os.getpid()}"
    try:
        return {"pids", "memory"} <= set(_try_cgroups(probe))
    finally:
        for folder in set(_cgroup_dirs(probe).values()):
            with contextlib.suppress(OSError):
                folder.rmdir()


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
            _fresh_tmpfs(place, size)
    _join_cgroups(cgroup, limits)
    if CGROUP_ROOT.is_dir():
        mount("tmpfs", str(CGROUP_ROOT), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    os.makedirs("/tmp/work", exist_ok=True)
    set_rlimits(limits)
    _drop_capabilities()
    install_seccomp()
    return "/tmp/work"
