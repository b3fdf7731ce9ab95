"""Read and write dataset folders in the NIH ChestX-ray14 layout.

A dataset folder (the download stage's output) holds:

* ``Data_Entry_2017_v2020.csv`` -- the label table, official columns;
* ``BBox_List_2017.csv`` -- optional, the box table in the official format,
  boxes in the 1024x1024 release space;
* ``images/`` -- the PNGs named by ``Image Index``; or, for sources referenced in
  place, ``images_dir.txt`` holding the absolute path of the image folder.

:func:`open_image` decides which image files every stage (and ``predict``) accepts.
"""
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from chestxray.core.atomic import atomic_write
from chestxray.core.errors import PipelineError
from chestxray.nih.labels import (
    BOX_LABEL_ALIASES, BOX_TABLE_COLUMNS, BOX_TABLE_HEADER, FINDINGS, LABEL_TABLE_COLUMNS,
    parse_findings,
)

LABEL_TABLE = "Data_Entry_2017_v2020.csv"
BOX_TABLE = "BBox_List_2017.csv"
IMAGES = "images"
IMAGES_POINTER = "images_dir.txt"
# NIH's official split, image names one per line (optional).
TEST_LIST = "test_list.txt"
SPLIT_LISTS = ("train_val_list.txt", TEST_LIST)
# NIH released 1024x1024 PNGs; the box table's coordinates live in that space.
RELEASE_SIZE = 1024


class LabelTableError(PipelineError, ValueError):
    """A label or box table that does not follow the NIH schema."""


def _not_utf8(path, what, error):
    """The :class:`LabelTableError` of a ``what`` file that ``error`` could not decode."""
    return LabelTableError(f"{path}: cannot read {what} (not UTF-8 text: {error.reason} at "
                           f"byte {error.start}); save it as UTF-8")


def read_text(path, what):
    """The text of the UTF-8 file ``path`` (a ``what``); one LabelTableError line if it is not."""
    try:
        return Path(path).read_bytes().decode()
    except UnicodeDecodeError as error:
        raise _not_utf8(path, what, error) from error


def read_csv(path, what, **options):
    """``pd.read_csv(path, **options)``; a file that cannot be read or parsed is one
    :class:`LabelTableError` line naming ``path`` and ``what`` it should hold."""
    try:
        return pd.read_csv(path, **options)
    except UnicodeDecodeError as error:
        raise _not_utf8(path, what, error) from error
    except OSError as error:
        raise LabelTableError(f"{path}: cannot read {what} ({error.strerror})") from error
    except ValueError as error:  # pandas' ParserError and EmptyDataError (a 0-byte file)
        # pandas' messages may end in a newline or span lines.
        raise LabelTableError(f"{path}: cannot read {what} ({' '.join(str(error).split())})") \
            from error


def invalid_patient_ids(ids):
    """Mask of the ``Patient ID`` cells (text, NaN for empty) that are not whole numbers.

    NIH's IDs are 1..30805. A whole number is written in digits, at most 18 so
    that it fits int64: '2.7' would otherwise be truncated to 2 and '1e400' is
    infinite. Returns a bool ndarray.
    """
    digits = ids.fillna("").astype(str).str.strip().str.fullmatch("[0-9]{1,18}")
    return ~digits.to_numpy(dtype=bool)


def _patient_id_problem(ids, path):
    """The message for the first invalid ``Patient ID`` cell of ``ids``, or None."""
    invalid = invalid_patient_ids(ids)
    if not invalid.any():
        return None
    row = int(np.flatnonzero(invalid)[0])
    value = "" if pd.isna(ids.iloc[row]) else str(ids.iloc[row])
    if pd.isna(pd.to_numeric(value, errors="coerce")):
        return f"{path}: non-numeric Patient ID {value!r} in row {row}"
    return (f"{path}: Patient ID {value!r} in row {row} is not a whole number of at most 18 "
            f"digits")


def read_label_table(path):
    """Read and validate an NIH label table.

    Returns a DataFrame with ``LABEL_TABLE_COLUMNS``; ``Patient ID`` is int64,
    ``Image Index`` and ``Finding Labels`` are text. Raises
    :class:`LabelTableError` naming the file and the problem.
    """
    path = Path(path)
    text = {"Image Index": str, "Finding Labels": str, "Patient ID": str}
    table = read_csv(path, "label table", dtype=text)
    # Some exports (the 2017 file) end each row with a trailing comma.
    table = table.loc[:, ~table.columns.str.startswith("Unnamed")]
    missing = [c for c in LABEL_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise LabelTableError(f"{path}: missing columns {missing}; "
                              f"expected {list(LABEL_TABLE_COLUMNS)}")
    # Empty cells are NaN: shown as '' in messages, never as a float.
    table[["Image Index", "Finding Labels"]] = table[["Image Index", "Finding Labels"]].fillna("")
    duplicated = table["Image Index"][table["Image Index"].duplicated()]
    if len(duplicated):
        raise LabelTableError(f"{path}: duplicate Image Index {duplicated.iloc[0]!r} "
                              f"({len(duplicated)} duplicates)")
    problem = _patient_id_problem(table["Patient ID"], path)
    if problem:
        raise LabelTableError(problem)
    table["Patient ID"] = table["Patient ID"].str.strip().astype("int64")
    try:
        parse_findings(table["Finding Labels"])
    except ValueError as error:
        raise LabelTableError(f"{path}: {error}") from error
    return table[list(LABEL_TABLE_COLUMNS)]


def write_label_table(table, path):
    """Write ``table`` (``LABEL_TABLE_COLUMNS``) as NIH does, atomically."""
    with atomic_write(path, "w") as handle:
        table[list(LABEL_TABLE_COLUMNS)].to_csv(handle, index=False, lineterminator="\n")


def read_box_table(path):
    """Read an official-format box table.

    Returns a DataFrame with columns Image Index, Finding Label, x, y, w, h
    (float64, release space); ``Infiltrate`` is renamed ``Infiltration``.
    """
    path = Path(path)
    boxes = read_csv(path, "box table", header=0, names=list(BOX_TABLE_COLUMNS), usecols=range(6),
                     dtype={"Image Index": str, "Finding Label": str})
    labels = boxes["Finding Label"].fillna("").replace(BOX_LABEL_ALIASES)
    boxes["Finding Label"] = labels
    unknown = sorted(set(labels) - set(FINDINGS))
    if unknown:
        raise LabelTableError(f"{path}: unknown finding {unknown[0]!r} in box table")
    coordinates = boxes[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(coordinates.to_numpy(dtype=np.float64)).all():
        raise LabelTableError(f"{path}: non-numeric or infinite box coordinates")
    boxes[["x", "y", "w", "h"]] = coordinates.astype(np.float64)
    return boxes


def write_box_table(boxes, path):
    """Write boxes (``BOX_TABLE_COLUMNS``) under the official header, atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(BOX_TABLE_HEADER + "\n")
        boxes[list(BOX_TABLE_COLUMNS)].to_csv(handle, index=False, header=False,
                                              lineterminator="\n")


def images_dir(dataset_dir):
    """The folder holding a dataset's PNGs: ``images/`` or the referenced path."""
    dataset_dir = Path(dataset_dir)
    pointer = dataset_dir / IMAGES_POINTER
    if pointer.exists():
        return Path(pointer.read_text().strip())
    return dataset_dir / IMAGES


def _is_file_name(name):
    """Whether ``name`` is a plain file name, not empty and not a path ('../x.png', '/x.png')."""
    return name not in ("", ".", "..") and not any(character in name for character in "/\\\0")


def read_dataset(dataset_dir):
    """Label table of a dataset folder with an absolute ``path`` column per image.

    Every ``Image Index`` must be a file name inside the image folder: a path in
    it would read a file elsewhere.
    """
    dataset_dir = Path(dataset_dir)
    table = read_label_table(dataset_dir / LABEL_TABLE)
    root = images_dir(dataset_dir).resolve()
    for row, name in enumerate(table["Image Index"]):
        if not _is_file_name(name):
            raise LabelTableError(f"{dataset_dir / LABEL_TABLE}: Image Index {name!r} in row "
                                  f"{row} is not a file name in {root}")
    return table.assign(path=[str(root / name) for name in table["Image Index"]])


def read_dataset_boxes(dataset_dir):
    """A dataset's box table, or an empty one when the source has no boxes."""
    path = Path(dataset_dir) / BOX_TABLE
    if path.exists():
        return read_box_table(path)
    return pd.DataFrame(columns=list(BOX_TABLE_COLUMNS))


# --- image files ------------------------------------------------------------------

# Largest image accepted: full-resolution radiographs are ~3000x3000; anything
# claiming more than this is refused as a decompression bomb.
MAX_PIXELS = 64_000_000
# Smallest side accepted. A smaller file is a placeholder or an icon, not a
# radiograph (the smallest real ones here are NIH's 64-px sample); from 8 px up
# an image is resized to the network's input like any other.
MIN_SIDE = 8
# The formats training's decoder (tf.io.decode_png / decode_jpeg) reads.
DECODABLE = ("PNG", "JPEG")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The critical PNG chunks libpng knows; it refuses any other.
PNG_CRITICAL_CHUNKS = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
# (first column, first row, column step, row step) of the seven Adam7 interlace passes.
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))
# Samples per pixel of each PNG colour type, and the bit depths libpng accepts for it.
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# libpng's default limit on either side (PNG_USER_WIDTH_MAX, PNG_USER_HEIGHT_MAX).
PNG_MAX_SIDE = 1_000_000
INFLATE_STEP = 1 << 20  # bytes inflated at a time: the pixels are counted, never held
# Pixel data may inflate to more than the image needs (libpng ignores the rest), within reason.
EXTRA_PIXEL_DATA = 64 << 20


class ImageError(PipelineError, ValueError):
    """An image file that cannot be used: names the file and the problem."""


def _png_damage(data):
    """Why libpng, which training decodes with, would refuse PNG bytes ``data``, or None.

    Pillow decodes files libpng refuses: a wrong chunk checksum, an unknown or
    misplaced critical chunk (:func:`_misplaced`), a file that ends before a
    complete IEND chunk, pixel data that is short (:func:`_pixel_data_damage`).
    """
    seen, header, pixels = [], b"", []  # chunk types so far, IHDR's payload, IDAT payloads
    view, offset = memoryview(data), len(PNG_SIGNATURE)  # views: payloads are not copied
    while offset + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 12 + length
        if end > len(data):
            break
        if not kind.isalpha():
            return f"invalid chunk type {kind.decode('latin-1')!r}"
        payload = view[offset + 8:end - 4]
        if zlib.crc32(payload, zlib.crc32(kind)) != int.from_bytes(data[end - 4:end], "big"):
            return f"bad checksum in its {kind.decode()} chunk"
        header = payload if kind == b"IHDR" else header
        pixels += [payload] if kind == b"IDAT" else []
        problem = _misplaced(kind, seen, header)
        if problem or kind == b"IEND":
            return problem or _pixel_data_damage(header, pixels)
        seen.append(kind)
        offset = end
    return "truncated before its IEND chunk"


def _pixel_data_damage(header, pixels):
    """Why the IDAT payloads ``pixels`` are not one complete zlib stream of at least the
    image IHDR ``header`` declares, or None. Pillow fills in missing rows and ignores a
    stream cut short; libpng refuses both."""
    try:
        width, height, depth, colour, compression, filtering, interlaced = struct.unpack(
            ">IIBBBBB", header)
    except struct.error:
        return "an invalid IHDR chunk"
    if depth not in PNG_DEPTHS.get(colour, ()) or compression or filtering or interlaced > 1 \
            or not (0 < width <= PNG_MAX_SIDE and 0 < height <= PNG_MAX_SIDE):
        return "an invalid IHDR chunk"
    bits = PNG_CHANNELS[colour] * depth
    passes = ADAM7 if interlaced else ((0, 0, 1, 1),)
    # Each row: a filter byte, then its pixels; an empty pass has no rows.
    expected = sum(rows * (1 + (columns * bits + 7) // 8) if columns else 0
                   for columns, rows in ((-(-(width - x) // dx), -(-(height - y) // dy))
                                         for x, y, dx, dy in passes))
    inflater, produced = zlib.decompressobj(), 0
    try:
        for payload in pixels:
            while payload and not inflater.eof and produced <= expected + EXTRA_PIXEL_DATA:
                produced += len(inflater.decompress(payload, INFLATE_STEP))
                payload = inflater.unconsumed_tail
    except zlib.error as error:
        return f"corrupt pixel data ({error})"
    if produced > expected + EXTRA_PIXEL_DATA:
        return f"pixel data far longer than the {width}x{height} image its header declares"
    if produced < expected or not inflater.eof:
        return f"pixel data cut short of the {width}x{height} image its header declares"
    return None


def _misplaced(kind, seen, header):
    """Why libpng refuses chunk ``kind`` after the chunks ``seen`` (IHDR payload ``header``),
    or None. A misplaced ancillary chunk libpng only skips."""
    name = kind.decode()
    if not seen and kind != b"IHDR":
        return f"{name} before its IHDR chunk"
    if kind[0] & 0x20:
        return None
    if kind not in PNG_CRITICAL_CHUNKS:
        return f"unknown critical chunk {name!r}"
    if kind == b"IHDR" and seen or kind == b"PLTE" and (b"PLTE" in seen or b"IDAT" in seen):
        return f"a second or misplaced {name} chunk"
    if kind == b"IDAT" and b"IDAT" in seen and seen[-1] != b"IDAT":
        return "IDAT chunks that are not consecutive"
    if kind == b"IDAT" and header[9:10] == b"\x03" and b"PLTE" not in seen:
        return "a palette image without a PLTE chunk"
    if kind == b"IEND" and b"IDAT" not in seen:
        return "no IDAT chunk"
    return None


def _unreadable(path, formats, why):
    """The :class:`ImageError` of a file that is no readable image of ``formats``."""
    what = formats[0] if len(formats) == 1 else "image"
    return ImageError(f"{path}: not a readable {what} ({why})")


def _opened(data, path, formats):
    """``data`` opened (header only) by Pillow as one of ``formats``; ImageError otherwise."""
    if not data:
        raise _unreadable(path, formats, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{path}: refused as a decompression bomb ({error})") from error
    except Image.UnidentifiedImageError as error:
        raise _unreadable(path, formats, f"not a {' or '.join(formats)} file") from error
    # Pillow's parsers raise many types on malformed data (struct.error, EOFError...).
    except Exception as error:
        raise _unreadable(path, formats, error) from error


def open_image(path, formats=DECODABLE):
    """Open and fully decode the image file ``path``, or raise :class:`ImageError`.

    Refuses a missing or empty file, a format not in ``formats``, an image over
    ``MAX_PIXELS`` (a decompression bomb: refused before decoding) or with a
    side under ``MIN_SIDE``, a PNG whose chunks libpng would refuse
    (:func:`_png_damage`), and pixel data that does not decode to the end. So a
    file accepted here is one training can decode. Returns the loaded Pillow
    image; close it (``with open_image(path) as image:``).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise ImageError(f"{path}: file not found") from error
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({error.strerror})") from error
    image = _opened(data, path, formats)
    try:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(f"{path}: {width}x{height} pixels exceeds the {MAX_PIXELS:,}-pixel "
                             "limit (decompression bomb?)")
        if min(width, height) < MIN_SIDE:
            raise ImageError(f"{path}: {width}x{height} pixels, under the {MIN_SIDE}-pixel "
                             "minimum side: not a radiograph")
        damage = _png_damage(data) if image.format == "PNG" else None
        if damage:
            raise _unreadable(path, formats, damage)
        try:
            image.load()
        except Exception as error:  # as in _opened
            raise _unreadable(path, formats, error) from error
    except BaseException:
        image.close()
        raise
    return image
