"""``local`` source: an NIH-layout folder on disk (one ``images/`` folder, or the
``images_NNN/images`` folders of NIH's archives and Kaggle's copy), referenced in place.

dvc.yaml makes ``download.local_dir`` a dependency of the download stage, so DVC
notices a changed, added or removed file in it and reruns this source. The
output records every image's SHA-256 (:data:`IMAGE_DIGESTS`): a changed image
then changes the output, and the stages that read the images rerun too.
"""
from pathlib import Path

from chestxray.acquire.archives import find_image_folders
from chestxray.acquire.folders import png_files, refuse_inside
from chestxray.acquire.screening import InvalidDatasetError, summary, write_tables
from chestxray.core.atomic import atomic_directory
from chestxray.core.params import params_error
from chestxray.nih.layout import IMAGES, IMAGES_POINTER, LABEL_TABLE

# "<SHA-256>  <image name>" per image of the dataset, sorted by name (sha256sum's format).
IMAGE_DIGESTS = "images_sha256.txt"


def local_root(local_dir, data_dir):
    """``download.local_dir`` as an absolute Path; a ParamsError for a value that names no
    folder of its own: empty, starting with ``~``, or the embedded study's ``data_dir``."""
    if not local_dir or Path(local_dir).resolve() == Path(data_dir).resolve():
        raise params_error(f"download.local_dir = {local_dir!r}: set it to an NIH-layout folder "
                           f"for source 'local' (the default, {str(data_dir)!r}, holds the "
                           f"embedded study's tables)")
    if local_dir.startswith("~"):
        # DVC, which hashes the folder as a dependency, takes '~' literally.
        raise params_error(f"download.local_dir = {local_dir!r}: write the folder's path "
                           f"without '~' (DVC does not expand it)")
    return Path(local_dir).resolve()


def acquire_local(params, out_dir, data_dir):
    """``local`` source: reference the NIH-layout folder ``download.local_dir`` in place.

    Writes the checked tables, ``images_dir.txt`` (the image folders' absolute
    paths) and :data:`IMAGE_DIGESTS` into ``out_dir``; images are neither copied
    nor changed. ``data_dir`` (the embedded study's tables) is refused as the folder.
    """
    on_invalid = params["on_invalid"]
    root = local_root(params["local_dir"], data_dir)
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
    digests = {}
    with atomic_directory(out_dir) as staging:
        report = write_tables(root, images, staging, on_invalid, origin=origin, digests=digests)
        (staging / IMAGES_POINTER).write_text("".join(f"{folder}\n" for folder in folders))
        (staging / IMAGE_DIGESTS).write_text("".join(
            f"{digests[name]}  {name}\n" for name in sorted(report.table["Image Index"])))
    return summary("local", report, f"{origin} (referenced in place)")
