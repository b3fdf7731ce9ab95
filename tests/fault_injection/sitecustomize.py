"""Deterministic fault injection for tests/test_faults.py; no product code is changed.

Python imports ``sitecustomize`` at start-up from the first folder of ``sys.path`` that has one,
so a process started with this folder on ``PYTHONPATH`` (``dvc repro`` passes its environment
on to the stage commands) reads these variables:

``CHESTXRAY_FAULT_AT``
    ``module:qualname[:nth]``, e.g. ``chestxray.core.params:load_params`` or
    ``chestxray.model.callbacks:LiveMetrics.on_epoch_end:2``: the function whose ``nth`` call
    (default 1) triggers the fault. The function is wrapped as soon as its module has been
    executed, before any other module can import it by name.
``CHESTXRAY_FAULT_WHEN``
    ``before`` (default) or ``after`` that call.
``CHESTXRAY_FAULT_MATCH``
    a regular expression; only calls whose ``repr`` of arguments matches it are counted.
``CHESTXRAY_FAULT_ACTION``
    ``kill`` (default): SIGKILL this process at once. ``pause``: wait, in the calling thread,
    for the test to send a signal (SIGINT raises KeyboardInterrupt right there).
``CHESTXRAY_FAULT_PROGRAM``
    a regular expression searched in this process's command line; other processes (``dvc``
    itself, which inherits the same environment) are left alone. Required.
``CHESTXRAY_FAULT_FIRED``
    a file created (with this process's id) the moment the fault fires, so that a test can
    tell a fault that fired from a process that died or finished for another reason.

Without ``CHESTXRAY_FAULT_AT`` this module does nothing.
"""
import functools
import importlib.abc
import os
import re
import signal
import sys
import time

PAUSE_LIMIT_S = 600


def _fire(action, fired):
    if fired:
        with open(f"{fired}.tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(f"{fired}.tmp", fired)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise ValueError(f"CHESTXRAY_FAULT_ACTION: unknown action {action!r}")


def _wrap(function, nth, when, match, action, fired):
    calls = 0

    @functools.wraps(function)
    def faulty(*args, **kwargs):
        nonlocal calls
        hit = False
        if match is None or re.search(match, repr((args, kwargs))):
            calls += 1
            hit = calls == nth
        if hit and when == "before":
            _fire(action, fired)
        result = function(*args, **kwargs)
        if hit and when == "after":
            _fire(action, fired)
        return result

    return faulty


def _patch(module, qualname, wrap):
    *owners, name = qualname.split(".")
    owner = module
    for part in owners:
        owner = getattr(owner, part)
    setattr(owner, name, wrap(getattr(owner, name)))


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; makes the target module's loader patch it once executed."""

    def __init__(self, module_name, patch):
        self.module_name, self.patch = module_name, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module_name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        sys.meta_path.remove(self)
        return spec


def _install():
    at = os.environ.get("CHESTXRAY_FAULT_AT")
    program = os.environ.get("CHESTXRAY_FAULT_PROGRAM")
    if not at or not program:
        return
    if not re.search(program, " ".join(getattr(sys, "orig_argv", sys.argv))):
        return
    module_name, qualname, *nth = at.split(":")
    wrap = functools.partial(
        _wrap, nth=int(nth[0]) if nth else 1,
        when=os.environ.get("CHESTXRAY_FAULT_WHEN", "before"),
        match=os.environ.get("CHESTXRAY_FAULT_MATCH"),
        action=os.environ.get("CHESTXRAY_FAULT_ACTION", "kill"),
        fired=os.environ.get("CHESTXRAY_FAULT_FIRED"))

    def patch(module):
        _patch(module, qualname, wrap)

    if module_name in sys.modules:
        patch(sys.modules[module_name])
    else:
        sys.meta_path.insert(0, _PatchOnImport(module_name, patch))


_install()
