"""One submission's run in a bubblewrap sandbox: own PID, mount, network, IPC and UTS namespaces.

What the sandbox holds, read-only: the system (/usr, /etc, ...), Python and the virtual environment,
the course library (lib/) with the modules a lab hides replaced by a stub; read-write: a fresh,
empty scratch folder (its home and working folder) and a private /tmp. Nothing else of the course
is there: no labs/source, tests/, output folder or other submissions. Limits (prlimit, inside):
address space, CPU seconds, processes, file size, no core dumps. When the grader is root, each job
slot runs as its own unprivileged uid, so the process limit counts one submission's processes only.
The run ends when the command does, on the wall-clock limit, or when the grader dies
(--die-with-parent); bwrap's PID namespace takes every process of the run with it, including ones
that called setsid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from fasttrain.paths import REPO_ROOT

INSTALL = (
    "install bubblewrap, the sandbox the grader runs each submission in: `sudo apt-get install bubblewrap` "
    "(Debian/Ubuntu; `make setup` does it), or grade only trusted notebooks with --unsafe-no-sandbox"
)
STUB = 'raise ImportError("{name} is not available while this lab is graded: the exercise asks you to write it")\n'
MAX_OUTPUT = 16 * 2**20  # bytes of results read back; a run that writes more is cut off there
UID_BASE = 61000  # job slot k runs as uid UID_BASE + k when the grader is root


class NoSandbox(RuntimeError):
    """bubblewrap is missing or does not work here."""


@dataclass
class Ended:
    returncode: int | None
    timed_out: bool
    output: bytes
    truncated: bool = False


def bwrap() -> str:
    path = os.environ.get("FASTTRAIN_BWRAP") or shutil.which("bwrap")
    if not path or not os.access(path, os.X_OK):
        raise NoSandbox(f"No sandbox: bwrap not found. To grade untrusted notebooks, {INSTALL}.")
    return path


def check_hidden(names: list[str]) -> None:
    """Fail before grading anyone if a lab hides a module or name that does not exist."""
    for name in names:
        _defining_files(name)


def _ro_roots() -> list[str]:
    """What Python needs to start, read-only: the system, the interpreter's prefix, the venv, the library."""
    roots = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/opt"]
    for path in {sys.prefix, sys.base_prefix, sysconfig.get_paths()["purelib"], str(REPO_ROOT / "lib")}:
        roots.append(str(Path(path).resolve()))
    return [r for r in dict.fromkeys(roots) if os.path.exists(r)]


def _hidden_files(modules: list[str], stub_dir: Path) -> list[str]:
    """bwrap arguments that put a stub over each hidden module's file and hide its package's bytecode."""
    args = []
    for name in modules:
        for module, origin in _defining_files(name):
            stub = stub_dir / f"{module}.py"
            stub.write_text(STUB.format(name=module))
            args += ["--ro-bind", str(stub), str(origin)]
            cache = origin.parent / "__pycache__"
            if cache.is_dir():
                args += ["--tmpfs", str(cache)]
    return _dedupe(args)


def _defining_files(name: str) -> list[tuple[str, Path]]:
    """A module's file, or for an object (module.attr) both the module that exports it and the one defining it."""
    import importlib
    import importlib.util

    if "*" in name:  # every module of a package matching a pattern, e.g. fasttrain.chapters.ch01_*
        package, _, pattern = name.rpartition(".")
        spec = importlib.util.find_spec(package)
        folders = list(spec.submodule_search_locations or []) if spec else []
        found = [(f"{package}.{p.stem}", p.resolve()) for f in folders for p in sorted(Path(f).glob(f"{pattern}.py"))]
        if not found:
            raise FileNotFoundError(f"The lab hides {name}, but no module matches: fix the lab's metadata")
        return found
    module_name, attr = name, None
    spec = importlib.util.find_spec(name) if "." not in name or _is_module(name) else None
    if spec is None:
        module_name, _, attr = name.rpartition(".")
    modules = [module_name]
    if attr is not None:
        obj = getattr(importlib.import_module(module_name), attr, None)
        if obj is None:
            raise FileNotFoundError(f"The lab hides {name}, but {module_name} has no {attr}: fix the lab's metadata")
        modules.append(getattr(obj, "__module__", module_name))
    found = []
    for module in dict.fromkeys(modules):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin or not os.path.isfile(spec.origin):
            raise FileNotFoundError(
                f"The lab hides {name}, but module {module} is not installed: fix the lab's metadata"
            )
        found.append((module, Path(spec.origin).resolve()))
    return found


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # the parent is not a package: name is an object
        return False


def _dedupe(args: list[str]) -> list[str]:
    seen, out, i = set(), [], 0
    while i < len(args):
        step = 2 if args[i] == "--tmpfs" else 3
        key = tuple(args[i : i + step])
        if key not in seen:
            seen.add(key)
            out += list(key)
        i += step
    return out


def _mounts(roots: list[str]) -> list[str]:
    """Read-only binds of `roots`, each below parent folders anyone may traverse (so /root/.pyenv works as 0700)."""
    args, made = [], {"/tmp"}  # /tmp is the sandbox's own tmpfs (1777): its mode must stay
    for root in roots:
        for parent in reversed(Path(root).parents[:-1]):
            if str(parent) not in made and str(parent) not in roots:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", root, root]
    return args


def command(argv: list[str], scratch: Path, hide: list[str], stub_dir: Path, limits, uid: int | None) -> list[str]:
    """The bwrap command line that runs `argv` in `scratch` under the limits (as `uid` when the grader is root)."""
    args = [bwrap(), "--die-with-parent", "--new-session"]
    if uid is None:  # unprivileged: bwrap needs a user namespace of its own
        args += ["--unshare-all", "--cap-drop", "ALL"]
    else:  # root: no user namespace, so that the uid below is a real, unprivileged one the process cap counts
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    # A private /tmp first: the course (its venv, its library) may itself live under /tmp, as a fresh
    # clone in CI can, and the read-only binds below must land on top of it, not under it.
    args += ["--perms", "1777", "--tmpfs", "/tmp"]
    args += _mounts(_ro_roots()) + _hidden_files(hide, stub_dir)
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--bind",
        str(scratch),
        "/scratch",
    ]
    args += ["--chdir", "/scratch", "--clearenv"]
    threads = str(max(1, (os.cpu_count() or 1) // max(1, limits.jobs)))
    env = {
        "HOME": "/scratch",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "FASTTRAIN_BUILD_DIR": "/scratch/build",
        "MPLCONFIGDIR": "/scratch/.mpl",
        "IPYTHONDIR": "/scratch/.ipython",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "LANG": "C.UTF-8",
        "FASTTRAIN_LAB_DATA": "/scratch/data",
    }
    for k, v in env.items():
        args += ["--setenv", k, v]
    args.append("--")
    if uid is not None:
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
        args += ["--bounding-set=-all", "--no-new-privs", "--"]
    memory = limits.memory_mb * 2**20
    cpu = int(limits.notebook_timeout * int(threads)) + 5  # CPU seconds: the wall limit on every thread, and some
    args += ["prlimit", f"--as={memory}", f"--cpu={cpu}", f"--nproc={limits.processes}", "--core=0"]
    return args + [f"--fsize={256 * 2**20}", "--"] + argv


def run(argv: list[str], plan: dict, hide: list[str], limits, slot: int = 0, data: list[Path] = ()) -> Ended:
    """Run `argv` (reading `plan` on stdin, writing results on the fd it names) in a fresh sandbox, with copies
    of the lab's `data` files in its scratch folder's data/."""
    with tempfile.TemporaryDirectory(prefix="fasttrain-grade-") as tmp:
        os.chmod(tmp, 0o711)  # the sandbox's uid reaches its scratch and the stubs, and lists nothing
        scratch, stubs = Path(tmp) / "scratch", Path(tmp) / "stubs"
        scratch.mkdir()
        stubs.mkdir(mode=0o755)
        uid = UID_BASE + slot if os.geteuid() == 0 else None
        if data:
            (scratch / "data").mkdir()
            for path in data:
                shutil.copyfile(path, scratch / "data" / Path(path).name)
        if uid is not None:
            for path in [scratch, *scratch.rglob("*")]:
                os.chown(path, uid, uid)
        cmd = command(argv, scratch, hide, stubs, limits, uid)
        for stub in stubs.iterdir():
            stub.chmod(0o644)
        return _supervise(cmd, plan, limits.notebook_timeout)


def run_unsafe(argv: list[str], plan: dict, limits, data: list[Path] = ()) -> Ended:
    """--unsafe-no-sandbox: the same run as a plain process in a scratch folder (trusted notebooks only)."""
    with tempfile.TemporaryDirectory(prefix="fasttrain-grade-") as tmp:
        (Path(tmp) / "data").mkdir()
        for path in data:
            shutil.copyfile(path, Path(tmp) / "data" / Path(path).name)
        env = {**os.environ, "HOME": tmp, "FASTTRAIN_BUILD_DIR": f"{tmp}/build", "IPYTHONDIR": f"{tmp}/.ipython"}
        env["FASTTRAIN_LAB_DATA"] = f"{tmp}/data"
        return _supervise(argv, plan, limits.notebook_timeout, cwd=tmp, env=env)


def _supervise(cmd, plan: dict, timeout: float, cwd=None, env=None) -> Ended:
    read_end, write_end = os.pipe()
    payload = json.dumps({**plan, "result_fd": write_end}).encode()
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(read_end, chunks), daemon=True)
    reader.start()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(write_end,),
        start_new_session=True,
        cwd=cwd,
        env=env,
    )
    os.close(write_end)
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    try:  # bwrap's namespace dies with it; the group kill covers an unsandboxed run
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    reader.join(timeout=10)
    output = b"".join(chunks)
    return Ended(proc.returncode, timed_out, output[:MAX_OUTPUT], len(output) > MAX_OUTPUT)


def _drain(fd: int, chunks: list[bytes]) -> None:
    total = 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            if total <= MAX_OUTPUT:  # keep reading (so the writer never blocks), stop keeping
                chunks.append(chunk)
                total += len(chunk)
