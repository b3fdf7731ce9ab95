"""From an image file to model input: one chain of transforms for every consumer.

    read -> decode (gray, 0..255) -> resize (antialiased) -> quantise (uint8) -> normalise

The training and evaluation datasets (:mod:`chestxray.data.dataset`) cache
the uint8 images that :func:`load_pixels` returns and normalise each batch;
Grad-CAM and ``predict`` call :func:`preprocess_files`, which composes the
same functions. The settings (:class:`Preprocessing`) are saved inside the
trained model (:mod:`chestxray.model.saved`), so a model is always fed as it
was trained.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from chestxray.data.images import ImageError, check_image

# decode_png with uint16 reads 8-bit, 16-bit, gray and RGB(A) PNGs alike on a
# 0..65535 scale; dividing by 257 maps every flavour onto 0..255.
UINT16_TO_UINT8 = 257.0
# Samplewise std floor, as in Keras 2's ImageDataGenerator, for flat images.
SAMPLEWISE_EPSILON = 1e-6
NORMALIZATIONS = ("featurewise", "samplewise")
# tf.io's errors for a file it cannot read or decode.
DECODE_FAILURES = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                   tf.errors.DataLossError)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become model input.

    image_size : side in pixels of the square input; normalization :
    ``featurewise`` (training split's ``pixel_mean``/``pixel_std``, 0..255
    scale) or ``samplewise`` (each image's own mean and std, as the seeds'
    ``ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True)``).
    """
    image_size: int
    normalization: str
    pixel_mean: float = 0.0
    pixel_std: float = 1.0

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, "
                             f"got {self.normalization!r}")

    @classmethod
    def from_params(cls, train_params, stats):
        """The settings of a training run: ``train`` params and the stats stage's dict."""
        return cls(int(train_params["image_size"]), train_params["normalization"],
                   float(stats["pixel_mean"]), float(stats["pixel_std"]))

    def to_dict(self):
        return dataclasses.asdict(self)

    def model_input(self, pixels):
        """uint8 images (n, S, S, 1) from :func:`load_pixels` -> normalised float32 array."""
        return self.normalize(tf.cast(pixels, tf.float32)).numpy()

    def normalize(self, images):
        """float32 images (..., H, W, 1) on 0..255 -> about zero mean, unit variance."""
        if self.normalization == "featurewise":
            return (images - self.pixel_mean) / self.pixel_std
        image_mean, image_variance = tf.nn.moments(images, axes=[-3, -2, -1], keepdims=True)
        return (images - image_mean) / (tf.sqrt(image_variance) + SAMPLEWISE_EPSILON)


def decode_gray(contents):
    """PNG or JPEG bytes (a string tensor) -> float32 gray (H, W, 1) on 0..255.

    PNGs of any bit depth and colour type, and JPEGs, land on one scale;
    colour images are reduced to luminance by the decoder.
    """
    def png():
        pixels = tf.io.decode_png(contents, channels=1, dtype=tf.uint16)
        return tf.cast(pixels, tf.float32) / UINT16_TO_UINT8

    def jpeg():
        return tf.cast(tf.io.decode_jpeg(contents, channels=1), tf.float32)

    return tf.cond(tf.io.is_jpeg(contents), jpeg, png)


def resize(pixels, image_size):
    """float32 (H, W, 1) -> (image_size, image_size, 1), bilinear with antialiasing."""
    return tf.image.resize(pixels, (image_size, image_size), antialias=True)


def quantize(pixels):
    """float32 on 0..255 -> uint8, rounded: what the training cache holds."""
    return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def load_pixels(path, image_size):
    """Read, decode, resize and quantise one image file: uint8 (image_size, image_size, 1).

    Works on a string tensor inside tf.data as well as eagerly on a str.
    """
    return quantize(resize(decode_gray(tf.io.read_file(path)), image_size))


def decode_file(path):
    """:func:`decode_gray` of one file, eagerly, after :func:`check_image`.

    Returns float32 (H, W, 1) on 0..255; raises
    :class:`~chestxray.data.images.ImageError` for a file that cannot be used.
    """
    check_image(path)
    try:
        return decode_gray(tf.io.read_file(str(path)))
    except DECODE_FAILURES as error:
        raise ImageError(f"{path}: not a readable image ({error.message})") from error


def load_image(path, image_size):
    """:func:`load_pixels` of one file, eagerly, with :func:`decode_file`'s errors.

    Returns a uint8 array (image_size, image_size, 1).
    """
    return quantize(resize(decode_file(path), image_size)).numpy()


def preprocess_files(paths, preprocessing):
    """Model input for image files: float32 (n, S, S, 1), S = ``preprocessing.image_size``.

    Raises :class:`~chestxray.data.images.ImageError` naming the first file that
    cannot be used.
    """
    size = preprocessing.image_size
    pixels = np.stack([load_image(path, size) for path in paths]) if len(paths) else \
        np.zeros((0, size, size, 1), np.uint8)
    return preprocessing.model_input(pixels)


def load_display_image(path, max_side):
    """The image at its own resolution for people to look at: uint8 gray (H, W).

    Decoded as the model's input is; an image larger than ``max_side`` is
    scaled down to fit, keeping its aspect ratio.
    """
    pixels = decode_file(path)
    height, width = pixels.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        pixels = tf.image.resize(pixels, (max(1, round(height * scale)),
                                          max(1, round(width * scale))), antialias=True)
    return quantize(pixels).numpy()[..., 0]
