"""Write outputs so that a failure never leaves a half-written file behind.

Each helper builds the new output under a temporary name beside the old one
and renames it into place only when complete. A full disk, a read-only
folder or a missing permission while writing becomes one
:class:`OutputWriteError` naming the output; the previous output stays.
"""
import contextlib
import errno
import os
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
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=f".tmp{''.join(path.suffixes)}")
        os.close(handle)
        os.chmod(temporary, 0o666 & ~_umask())
        try:
            yield Path(temporary)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
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
        _recover_interrupted_swap(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
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
        _recover_interrupted_swap(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _swap_in(Path(finished), path)


def _previous(path):
    return path.with_name(f".{path.name}.old")


def _swap_in(temporary, path):
    """Rename ``temporary`` to ``path``; the previous ``path`` is set aside, removed only after."""
    if path.exists():
        shutil.rmtree(_previous(path), ignore_errors=True)
        os.replace(path, _previous(path))
    os.replace(temporary, path)
    shutil.rmtree(_previous(path), ignore_errors=True)


def _recover_interrupted_swap(path):
    """Put the previous folder back if a swap was killed between its two renames."""
    if not path.exists() and _previous(path).is_dir():
        os.replace(_previous(path), path)


def _umask():
    """The process's umask: temporary files are created 0600 and folders 0700, and the
    outputs they become must have the permissions any other file of the user gets."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
