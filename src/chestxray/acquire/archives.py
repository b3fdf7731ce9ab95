"""Extract dataset archives safely and find the NIH-layout folder inside one.

Archives come from the internet, so every member is checked before it is
written: absolute paths, ``..`` components, symbolic links, hard links leaving
the target and device files or pipes are refused with one error naming the
archive and the member. Extraction goes to a temporary folder that is renamed
into place only when complete.
"""
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from chestxray.core.atomic import WRITE_FAILURES, atomic_directory
from chestxray.core.errors import PipelineError
from chestxray.nih.layout import IMAGES, LABEL_TABLE

# tarfile's extraction filters arrived in Python 3.11.4 (and 3.8.17/3.9.17/3.10.12).
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


class ArchiveError(PipelineError, ValueError):
    """An archive that cannot be extracted safely, or holds no NIH-layout folder."""


def _refused(archive, member, reason):
    return ArchiveError(f"{archive}: refused member {member!r}: {reason}")


def _unsafe_path(name):
    """Why a member path could land outside the target, or None if it cannot."""
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' in path"
    return None


def _tar_filter(archive):
    """A tarfile extraction filter: our refusals first, then Python's ``data`` filter.

    The ``data`` filter alone would quietly strip a leading ``/`` and keep a
    symlink that stays inside the target; we refuse both outright because a
    dataset archive holds only folders and regular files.
    """
    def check(member, destination):
        reason = _unsafe_path(member.name)
        if reason is None and member.issym():
            reason = f"symbolic link to {member.linkname!r}"
        if reason is None and member.islnk() and _unsafe_path(member.linkname):
            reason = f"hard link to {member.linkname!r} outside the target"
        if reason is None and member.isdev():
            reason = "device file or pipe"
        if reason:
            raise _refused(archive, member.name, reason)
        if not HAS_DATA_FILTER:
            return member
        try:
            return tarfile.data_filter(member, destination)
        except tarfile.FilterError as error:
            raise _refused(archive, member.name, str(error)) from error
    return check


def _extract_tar(bundle, staging, archive):
    """Extract a tar with our checks, plus Python's ``data`` filter where it exists."""
    check = _tar_filter(archive)
    if HAS_DATA_FILTER:
        bundle.extractall(staging, filter=check)
    else:
        # Python before 3.11.4 has no extraction filters: check every member
        # first, so nothing is written if any member is refused.
        members = bundle.getmembers()
        for member in members:
            check(member, str(staging))
        bundle.extractall(staging, members=members)


def _check_zip_member(archive, info):
    """Raise :class:`ArchiveError` unless ``info`` is a safe folder or regular file."""
    reason = _unsafe_path(info.filename)
    # Unix zips keep st_mode in the high 16 bits; a file type of 0 means "not
    # recorded" (DOS zips, Python's writestr) and is a regular file.
    kind = stat.S_IFMT(info.external_attr >> 16)
    if reason is None and kind == stat.S_IFLNK:
        reason = "symbolic link"
    if reason is None and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        reason = "device file or pipe"
    if reason:
        raise _refused(archive, info.filename, reason)


def extract_archive(archive, destination):
    """Extract a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` file into ``destination``.

    The format is recognised from the content, not the name. ``destination``
    (replaced if it exists) appears only once every member is written; on any
    error nothing is left behind. Returns ``destination`` as a Path; raises
    :class:`ArchiveError` naming the archive (and the member when one is refused).
    """
    archive, destination = Path(archive), Path(destination)
    with atomic_directory(destination) as staging:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as bundle:
                    for info in bundle.infolist():
                        _check_zip_member(archive, info)
                    bundle.extractall(staging)
            else:
                with tarfile.open(archive, "r:*") as bundle:
                    _extract_tar(bundle, staging, archive)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
            if isinstance(error, OSError) and error.errno in WRITE_FAILURES:
                raise  # the destination's disk, not the archive: atomic_directory names it
            raise ArchiveError(f"{archive}: cannot extract ({error})") from error
    return destination


def find_dataset_root(tree, archive=None):
    """The one folder under ``tree`` that holds the label table; raises if none or several.

    Messages name ``archive`` (the file ``tree`` was extracted from) when given.
    """
    tree = Path(tree)
    shown = archive or tree
    tables = sorted(path for path in tree.rglob(LABEL_TABLE) if path.is_file())
    if not tables:
        raise ArchiveError(f"{shown}: no {LABEL_TABLE} inside; the archive must hold an "
                           f"NIH-layout folder (label table and images/)")
    if len(tables) > 1:
        listed = ", ".join(str(path.relative_to(tree)) for path in tables)
        raise ArchiveError(f"{shown}: {len(tables)} label tables inside ({listed}); expected one")
    return tables[0].parent


def find_image_folders(root):
    """Image folders of an NIH-layout folder, as a sorted list of Paths (maybe empty).

    ``root/images`` and the ``root/images_NNN/images`` folders of the NIH
    archives (and of their Kaggle copy) both count.
    """
    root = Path(root)
    folders = [root / IMAGES] if (root / IMAGES).is_dir() else []
    return folders + sorted(path for path in root.glob(f"{IMAGES}_*/{IMAGES}") if path.is_dir())
