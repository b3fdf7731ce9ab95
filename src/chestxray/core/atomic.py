"""Write outputs so that a failure never leaves a half-written file behind.

Each helper builds the new output under a temporary name beside the old one
and renames it into place only when complete. A full disk, a read-only
folder or a missing permission while writing becomes one
:class:`OutputWriteError` naming the output; the previous output stays.
Temporary names carry the writer's process id, so that the next writer of
the same output removes what a killed process left.
"""
import contextlib
import ctypes
import errno
import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

from chestxray.core.errors import PipelineError

# errno values that mean "this location cannot take the output", not "an input is bad".
WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS,
                            errno.EACCES, errno.EPERM})


class OutputWriteError(PipelineError):
    """An output could not be written; the previous one is unchanged."""


def _write_failure(error, path):
    """An :class:`OutputWriteError` if ``error`` failed writing beside ``path``, else None.

    Errors naming a file elsewhere (an input that could not be read) are not
    write failures and keep their own message.
    """
    if not isinstance(error, OSError) or error.errno not in WRITE_FAILURES:
        return None
    if error.filename is not None and \
            not Path(os.path.abspath(error.filename)).is_relative_to(path.parent.absolute()):
        return None
    return OutputWriteError(f"cannot write {path} ({error.strerror}); {path} was left as it was")


@contextlib.contextmanager
def _reporting_write_failures(path):
    try:
        yield
    except OSError as error:
        failure = _write_failure(error, path)
        if failure is None:
            raise
        raise failure from error


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` (same suffixes); rename it over ``path`` on success.

    For writers that want a file name rather than a stream (Keras insists on
    ``.keras`` and ``.weights.h5``). On any exception the
    temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    with _reporting_write_failures(path):
        temporary = _temporary_file(path)
        try:
            yield temporary
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` keeps its
    previous content.
    """
    with atomic_path(path) as temporary, open(temporary, mode) as stream:
        yield stream


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; swap it in for ``path`` on success.

    Later stages never see a partly written folder: until the block finishes,
    ``path`` holds its previous content (or does not exist).
    """
    path = Path(path)
    with _reporting_write_failures(path):
        _prepare(path)
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path),
                                          suffix=".tmp"))
        os.chmod(temporary, 0o777 & ~_umask())
        try:
            yield temporary
            _swap_in(temporary, path)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise


def replace_directory(finished, path):
    """Swap the complete folder ``finished`` in for ``path``, as :func:`atomic_directory` does.

    For folders written elsewhere first (dvclive's staging folders); ``finished``
    must be on ``path``'s file system.
    """
    path = Path(path)
    with _reporting_write_failures(path):
        _prepare(path)
        _swap_in(Path(finished), path)


class PendingOutputs:
    """Output files written under temporary names now and renamed into place together later.

    A stage that writes several outputs and metrics puts them all in place at
    its very end, so that a failure anywhere before leaves every one of them
    as it was (see :func:`chestxray.core.tracking.stage_outputs`).
    """

    def __init__(self):
        self._renames = []

    def path(self, path):
        """A new empty temporary file beside ``path`` (same suffixes) that :meth:`commit`
        renames to ``path``."""
        path = Path(path)
        with _reporting_write_failures(path):
            temporary = _temporary_file(path)
        self._renames.append((temporary, path))
        return temporary

    def commit(self):
        """Rename every temporary over its output, in the order they were asked for."""
        for temporary, path in self._renames:
            with _reporting_write_failures(path):
                os.replace(temporary, path)
        self._renames = []

    def discard(self):
        """Remove every temporary; the outputs keep their previous content."""
        for temporary, _ in self._renames:
            temporary.unlink(missing_ok=True)
        self._renames = []


def _temporary_prefix(path):
    return f".{path.name}.{os.getpid()}."


def _temporary_file(path):
    """A new empty file beside ``path``, with ``path``'s suffixes and the umask's permissions."""
    _prepare(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path),
                                         suffix=f".tmp{''.join(path.suffixes)}")
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())
    return Path(temporary)


def _prepare(path):
    """Make ``path``'s folder; undo what a killed writer of ``path`` left (see the module doc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and _previous(path).is_dir():
        # Killed between the two renames of a swap without RENAME_EXCHANGE.
        os.replace(_previous(path), path)
    # Temporaries of path, or of a temporary of path (a writer given a PendingOutputs path).
    temporary_name = re.compile(rf"\.+{re.escape(path.name)}\.(\d+)\..*\.tmp")
    for leftover in path.parent.glob(f".*{glob.escape(path.name)}.*"):
        writer = temporary_name.match(leftover.name)
        if writer and not _running(int(writer[1])):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _previous(path):
    return path.with_name(f".{path.name}.old")


def _swap_in(temporary, path):
    """Put folder ``temporary`` at ``path``; the previous ``path`` is removed afterwards.

    Where the kernel can exchange two names in one step, no moment exists
    without a ``path``; elsewhere the previous folder is renamed aside first,
    and :func:`_prepare` puts it back if a kill falls between the two renames.
    """
    if path.exists() and _exchange(temporary, path):
        shutil.rmtree(temporary)
        return
    if path.exists():
        shutil.rmtree(_previous(path), ignore_errors=True)
        os.replace(path, _previous(path))
    os.replace(temporary, path)
    shutil.rmtree(_previous(path), ignore_errors=True)


RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def _exchange(first, second):
    """Swap the names of two existing paths atomically (Linux renameat2); False if unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second),
                 RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _umask():
    """The process's umask: temporary files are created 0600 and folders 0700, and the
    outputs they become must have the permissions any other file of the user gets."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
