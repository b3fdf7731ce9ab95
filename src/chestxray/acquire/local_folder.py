"""``local`` source: an NIH-layout folder on disk, referenced in place."""
from pathlib import Path

from chestxray.acquire.archives import find_image_folders
from chestxray.acquire.folders import png_files, refuse_inside
from chestxray.acquire.screening import InvalidDatasetError, summary, write_tables
from chestxray.core.atomic import atomic_directory
from chestxray.core.params import params_error
from chestxray.nih.layout import IMAGES, IMAGES_POINTER, LABEL_TABLE


def acquire_local(params, out_dir):
    """``local`` source: reference the NIH-layout folder ``download.local_dir`` in place.

    Writes the checked tables and ``images_dir.txt`` (the image folder's
    absolute path) into ``out_dir``; images are neither copied nor changed.
    """
    if not params["local_dir"]:
        raise params_error("download.local_dir must name an NIH-layout folder "
                           "for source 'local'")
    on_invalid = params["on_invalid"]
    root = Path(params["local_dir"]).expanduser().resolve()
    if not (root / LABEL_TABLE).is_file():
        raise InvalidDatasetError(f"{root}: no {LABEL_TABLE}; download.local_dir must be an "
                                  f"NIH-layout folder (label table and images/)")
    folders = find_image_folders(root)
    if len(folders) != 1:
        raise InvalidDatasetError(
            f"{root}: {len(folders)} image folders; a local source is referenced in place "
            f"through exactly one, {root / IMAGES} (move the PNGs there, or pack the folder "
            f"and use source 'url')")
    folder = folders[0]
    refuse_inside(folder, out_dir, "the image folder of download.local_dir")
    images = png_files(folder)
    with atomic_directory(out_dir) as staging:
        report = write_tables(root, images, staging, on_invalid, origin=str(folder))
        (staging / IMAGES_POINTER).write_text(f"{folder}\n")
    return summary("local", report, f"{folder} (referenced in place)")
