"""Which image files the pipeline accepts: every stage and ``predict`` ask :func:`open_image`.

An accepted file is one training's decoder (TensorFlow's libpng and libjpeg)
can decode to the end: Pillow decodes it in full, and a PNG's chunks are
checked for what libpng refuses though Pillow does not.
"""
import io
import struct
import warnings
import zlib
from pathlib import Path

from PIL import Image

from chestxray.core.errors import PipelineError

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
