"""Decode radiographs of any common PNG/JPEG flavour to one gray representation."""
import warnings

import numpy as np
from PIL import Image

from chestxray.core.errors import PipelineError

# Largest image accepted: full-resolution radiographs are ~3000x3000; anything
# claiming more than this is refused as a decompression bomb.
MAX_PIXELS = 64_000_000


class ImageError(PipelineError, ValueError):
    """An image file that cannot be used: names the file and the problem."""


def to_gray_uint8(image):
    """Convert a PIL image to a uint8 array of shape (H, W).

    8-bit gray is kept; 16-bit gray is scaled by its full 0..65535 range; RGB(A),
    palette and gray+alpha images are converted to luminance (alpha ignored).
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        return np.clip(np.round(pixels / 257.0), 0, 255).astype(np.uint8)
    if image.mode != "L":
        image = image.convert("RGB").convert("L")
    return np.asarray(image, dtype=np.uint8)


def check_image(path):
    """Refuse a file that is missing, empty, not an image or a decompression bomb.

    Reads the header only (the pixels are not decoded). Returns ``(width,
    height)``; raises :class:`ImageError` naming the file and the problem.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{path}: refused as a decompression bomb ({error})") from error
    except FileNotFoundError as error:
        raise ImageError(f"{path}: file not found") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from error
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{path}: {size[0]}x{size[1]} pixels exceeds the {MAX_PIXELS:,}-pixel "
                         "limit (decompression bomb?)")
    return size


def read_gray(path, size=None):
    """Read an image file as gray uint8, shape (H, W) or (size, size) if given.

    Raises :class:`ImageError` for a missing, empty, truncated, non-image or
    oversized file.
    """
    check_image(path)
    try:
        with Image.open(path) as image:
            image.load()
            gray = to_gray_uint8(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: not a readable image ({error})") from error
    if size is not None and gray.shape != (size, size):
        gray = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR))
    return gray
