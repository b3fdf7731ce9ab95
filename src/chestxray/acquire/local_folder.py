"""``local`` source: an NIH-layout folder on disk (one ``images/`` folder, or the
``images_NNN/images`` folders of NIH's archives and Kaggle's copy), referenced in place."""
from pathlib import Path

from chestxray.acquire.archives import find_image_folders
from chestxray.acquire.folders import png_files, refuse_inside
from chestxray.acquire.screening import InvalidDatasetError, summary, write_tables
from chestxray.core.atomic import atomic_directory
from chestxray.core.params import params_error
from chestxray.nih.layout import IMAGES, IMAGES_POINTER, LABEL_TABLE


def acquire_local(params, out_dir):
    """``local`` source: reference the NIH-layout folder ``download.local_dir`` in place.

    Writes the checked tables and ``images_dir.txt`` (the image folders' absolute
    paths) into ``out_dir``; images are neither copied nor changed.
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
    if not folders:
        raise InvalidDatasetError(f"{root}: no image folder: expected {root / IMAGES} or "
                                  f"{root}/{IMAGES}_NNN/{IMAGES} (NIH's archives, Kaggle's copy)")
    images = {}
    for folder in folders:
        refuse_inside(folder, out_dir, "an image folder of download.local_dir")
        for name, path in png_files(folder).items():
            if name in images:
                raise InvalidDatasetError(f"{root}: two images named {name!r}, in "
                                          f"{images[name].parent} and {folder}")
            images[name] = path
    origin = str(folders[0]) if len(folders) == 1 else f"{len(folders)} image folders under {root}"
    with atomic_directory(out_dir) as staging:
        report = write_tables(root, images, staging, on_invalid, origin=origin)
        (staging / IMAGES_POINTER).write_text("".join(f"{folder}\n" for folder in folders))
    return summary("local", report, f"{origin} (referenced in place)")
