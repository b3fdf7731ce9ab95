"""Where a source's images live: find them, gather them into the output, keep caches out of it."""
import os
from pathlib import Path

from chestxray.acquire.screening import InvalidDatasetError
from chestxray.core.params import params_error

EXTRACTED = ".extracted"  # scratch folder inside the output's staging folder


def cache_dir(params, out_dir):
    """``download.cache_dir`` as an absolute Path, refused inside ``out_dir``.

    ``out_dir`` is replaced wholesale on success, which would delete a cache in it.
    """
    cache = Path(params["cache_dir"] or "downloads").expanduser().resolve()
    refuse_inside(cache, out_dir, "download.cache_dir")
    return cache


def refuse_inside(path, out_dir, what):
    out_dir = Path(out_dir).resolve()
    if path == out_dir or out_dir in path.parents:
        raise params_error(f"{what} = {str(path)!r} lies inside the output folder {out_dir}, "
                           f"which the download stage replaces")


def png_files(folder):
    """``{file name: Path}`` of the PNGs directly in ``folder``."""
    with os.scandir(folder) as entries:
        return {entry.name: Path(entry.path) for entry in entries
                if entry.name.lower().endswith(".png") and entry.is_file()}


def gather_images(folders, target, images, origin):
    """Move the PNGs of ``folders`` into ``target``, recording them in ``images``.

    ``images`` (``{name: Path}``) is updated in place; a name seen twice is an error.
    """
    target.mkdir(exist_ok=True)
    for folder in folders:
        for name, path in png_files(folder).items():
            if name in images:
                raise InvalidDatasetError(f"{origin}: two images named {name!r}")
            os.replace(path, target / name)
            images[name] = target / name


def drop_unused(report, images):
    """Delete extracted images that ended up without a row (this run created them)."""
    for name in report.unused_images:
        images[name].unlink()
