"""Decode radiographs of any common PNG/JPEG flavour to one gray representation."""
import numpy as np
from PIL import Image

# ImageError is the error of every image reader; open_image decides which files are usable.
from chestxray.nih.image_files import ImageError, open_image


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
    """Refuse a file that training cannot decode or that is no radiograph.

    Decodes the whole image (:func:`chestxray.nih.image_files.open_image`): a file
    truncated or damaged inside its pixel data is refused here, not by
    TensorFlow halfway through training. Returns ``(width, height)``; raises
    :class:`ImageError` naming the file and the problem.
    """
    with open_image(path) as image:
        return image.size


def read_gray(path, size=None):
    """Read an image file as gray uint8, shape (H, W) or (size, size) if given.

    Raises :class:`ImageError` for a file :func:`check_image` refuses.
    """
    with open_image(path) as image:
        try:
            gray = to_gray_uint8(image)
        except (OSError, ValueError) as error:  # a mode Pillow cannot convert
            raise ImageError(f"{path}: not a readable image ({error})") from error
    if size is not None and gray.shape != (size, size):
        gray = np.asarray(Image.fromarray(gray).resize((size, size), Image.BILINEAR))
    return gray
