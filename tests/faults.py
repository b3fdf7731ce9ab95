"""Run a command with a fault injected at a named function (tests/fault_injection), or signal
its whole process group there, as a lost machine or a Ctrl-C in a terminal would."""
import atexit
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import psutil

INJECTION = Path(__file__).resolve().parent / "fault_injection"
STAGE_PROGRAM = r"stages/{stage}\.py"
PREDICT_PROGRAM = r"-m chestxray predict"


@dataclass(frozen=True)
class Fault:
    """Where and how a run is interrupted.

    ``at`` is ``module:qualname[:nth]`` (see ``fault_injection/sitecustomize.py``), ``when``
    ``before`` or ``after`` that call, ``match`` a regular expression the call's arguments
    must match to count. ``group_signal`` None: the process SIGKILLs itself there. Otherwise
    the process waits there, and the test sends ``group_signal`` to the whole process group
    (``dvc`` and the stage), as a terminal's Ctrl-C (SIGINT) or a lost machine (SIGKILL) does.
    """
    at: str
    when: str = "before"
    match: Optional[str] = None
    group_signal: Optional[int] = None


@dataclass
class Outcome:
    pid: int
    returncode: int
    output: str
    fired: bool
    leftover: list  # command lines of processes of the run's session still alive afterwards
    seconds: float


# Sessions of the runs in flight, killed if the tests stop before the runs end.
RUNNING = set()


@atexit.register
def stop_running():
    for session in list(RUNNING):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, signal.SIGKILL)


def environment(cwd, fault=None, program=None, fired=None):
    """This venv's tools, ``cwd``'s own package, the fault injection and its settings."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=f"{INJECTION}{os.pathsep}{Path(cwd) / 'src'}")
    for name in list(env):
        if name.startswith("CHESTXRAY_FAULT_"):
            del env[name]
    if fault is not None:
        env.update(CHESTXRAY_FAULT_AT=fault.at, CHESTXRAY_FAULT_WHEN=fault.when,
                   CHESTXRAY_FAULT_PROGRAM=program, CHESTXRAY_FAULT_FIRED=str(fired),
                   CHESTXRAY_FAULT_ACTION="kill" if fault.group_signal is None else "pause")
        if fault.match is not None:
            env["CHESTXRAY_FAULT_MATCH"] = fault.match
    return env


def session_processes(session):
    """Command lines of the live (not zombie) processes of session ``session``."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getsid(process.pid) == session and \
                    process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(" ".join(process.info["cmdline"] or []))
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def run_with_fault(command, cwd, fault, program, *, timeout=900):
    """Run ``command`` in ``cwd`` in a new session, with ``fault`` (None: none) armed in the
    processes whose command line matches ``program``; returns an :class:`Outcome`.

    The run's output (stdout and stderr together, as a terminal shows them) is kept in a file
    beside ``cwd``, so a long run cannot fill a pipe.
    """
    cwd = Path(cwd)
    fired = cwd.parent / f".{cwd.name}.fault-fired"
    log = cwd.parent / f".{cwd.name}.fault-log"
    fired.unlink(missing_ok=True)
    start = time.monotonic()
    with open(log, "w") as output:
        process = subprocess.Popen(in_a_terminal(command), cwd=cwd, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env=environment(cwd, fault, program, fired))
    RUNNING.add(process.pid)
    try:
        if fault is not None and fault.group_signal is not None:
            deadline = time.monotonic() + timeout
            while not fired.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if fired.exists():
                os.killpg(process.pid, fault.group_signal)
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    seconds = time.monotonic() - start
    time.sleep(0.5)  # let orphans of a killed process show
    leftover = session_processes(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    RUNNING.discard(process.pid)
    return Outcome(process.pid, process.returncode, log.read_text(), fired.exists(), leftover,
                   seconds)


# Execs its arguments with SIGINT and SIGQUIT at their defaults. A background job of a
# non-interactive shell (CI runners, `cmd &`) starts with them ignored, ignored signals stay
# ignored across exec, and Python then installs no KeyboardInterrupt handler at all. (No
# preexec_fn: the chains start processes from two threads.)
TERMINAL = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "signal.signal(signal.SIGQUIT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])")


def in_a_terminal(command):
    """``command`` started as a terminal's foreground job would start it, signal-wise."""
    return [sys.executable, "-S", "-c", TERMINAL, *map(str, command)]


def digests(repo, folders=("outputs", "metrics"), files=("dvc.lock",)):
    """{relative path: sha256} of the visible files of ``folders`` and of ``files`` under
    ``repo``: hidden names (temporaries, metrics/.staging) and outputs/checkpoints/ left out;
    a missing file of ``files`` is left out too."""
    found = {}
    for folder in folders:
        for path in sorted(Path(repo, folder).rglob("*")):
            relative = path.relative_to(repo)
            if not path.is_file() or any(part.startswith(".") for part in relative.parts) or \
                    relative.parts[:2] == ("outputs", "checkpoints"):
                continue
            found[str(relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    for name in files:
        if (repo / name).is_file():
            found[name] = hashlib.sha256((repo / name).read_bytes()).hexdigest()
    return found


def hidden_leftovers(root, folders):
    """Hidden files and folders (temporaries, set-aside folders) under ``root``'s ``folders``,
    metrics/.staging/ excepted."""
    return sorted(str(path.relative_to(root)) for folder in folders
                  for path in Path(root, folder).rglob(".*")
                  if path.relative_to(root).parts[:2] != ("metrics", ".staging"))


def differences(before, after):
    """Readable list of what changed between two :func:`digests`."""
    return ([f"missing {path}" for path in sorted(before.keys() - after.keys())]
            + [f"new {path}" for path in sorted(after.keys() - before.keys())]
            + [f"changed {path}" for path in sorted(before.keys() & after.keys())
               if before[path] != after[path]])
