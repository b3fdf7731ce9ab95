"""Every PNG flavour decodes to the same gray image; bad files get a clear error."""
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from chestxray.data.images import ImageError, check_image, read_gray
from chestxray.data.preprocessing import decode_gray, load_image, resize
from chestxray.nih.image_files import MIN_SIDE

from conftest import shared_file

GRADIENT = np.tile(np.arange(0, 256, 17, dtype=np.uint8), (16, 1))


@pytest.fixture
def flavours(tmp_path):
    """The same picture saved as 8-bit gray, 16-bit gray, RGB and RGBA PNG."""
    images = {
        "gray8": Image.fromarray(GRADIENT),
        "gray16": Image.fromarray(GRADIENT.astype(np.uint16) * 257),
        "rgb": Image.fromarray(np.stack([GRADIENT] * 3, axis=-1)),
        "rgba": Image.fromarray(np.dstack([GRADIENT] * 3 + [np.full_like(GRADIENT, 200)])),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = tmp_path / f"{name}.png"
        image.save(paths[name])
    return paths


def test_pillow_reader_agrees_across_flavours(flavours):
    for name, path in flavours.items():
        np.testing.assert_array_equal(read_gray(path), GRADIENT, err_msg=name)


def test_tf_data_decoder_agrees_across_flavours(flavours):
    for name, path in flavours.items():
        decoded = resize(decode_gray(tf.io.read_file(str(path))), 16).numpy()[..., 0]
        np.testing.assert_allclose(decoded, GRADIENT, atol=0.6, err_msg=name)


@pytest.mark.parametrize("content, problem", [
    (b"", "not a readable image"),
    (b"this is not a png", "not a readable image"),
])
def test_broken_files_are_named(tmp_path, content, problem):
    path = tmp_path / "00000001_000.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=f"00000001_000.png: {problem}"):
        read_gray(path)


def test_truncated_png_is_refused(tmp_path):
    path = tmp_path / "truncated.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated.png"):
        read_gray(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="nowhere.png: file not found"):
        read_gray(tmp_path / "nowhere.png")


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(path)  # 400 M pixels in a few kB
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageError, match="decompression bomb"):
        read_gray(path)


def test_real_full_resolution_radiograph_is_resized():
    gray = read_gray(shared_file("nih-fullres", "00000001_000.png"), 224)
    assert gray.shape == (224, 224) and gray.dtype == np.uint8
    assert 30 < gray.mean() < 220 and gray.std() > 20


def random_png(path, shape=(64, 64)):
    """A PNG of random gray pixels (they compress badly: the data spans the file)."""
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path.read_bytes()


def idat_span(data):
    """(start, end) offsets of the first IDAT chunk's data."""
    start = data.index(b"IDAT") + 4
    return start, start + int.from_bytes(data[start - 8:start - 4], "big")


@pytest.mark.parametrize("damage, problem", [
    (lambda data: data[:sum(idat_span(data)) // 2], "truncated before its IEND chunk"),
    (lambda data: data[:-1], "truncated before its IEND chunk"),
    (lambda data: data[:idat_span(data)[1]] + bytes(4) + data[idat_span(data)[1] + 4:],
     "bad checksum in its IDAT chunk"),
    (lambda data: data[:idat_span(data)[1] + 4] + bytes(4) + b"ABCD"
     + zlib.crc32(b"ABCD").to_bytes(4, "big") + data[idat_span(data)[1] + 4:],
     "unknown critical chunk 'ABCD'"),
], ids=["inside the pixel data", "in the end chunk", "checksum", "unknown critical chunk"])
def test_damage_after_the_header_is_refused(tmp_path, damage, problem):
    path = tmp_path / "damaged.png"
    path.write_bytes(damage(random_png(path)))
    with pytest.raises(ImageError, match=rf"damaged\.png: not a readable image \(.*{problem}"):
        check_image(path)
    with pytest.raises(ImageError, match=problem):
        load_image(path, 32)  # what predict and Grad-CAM read through


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (7, 64)])
def test_images_under_the_minimum_side_are_refused(tmp_path, shape):
    path = tmp_path / "tiny.png"
    random_png(path, shape)
    message = rf"tiny\.png: {shape[1]}x{shape[0]} pixels, under the {MIN_SIDE}-pixel minimum side"
    for read in (check_image, read_gray, lambda path: load_image(path, 32)):
        with pytest.raises(ImageError, match=message):
            read(path)


def test_an_accepted_image_decodes_in_tensorflow_too(flavours):
    for path in flavours.values():
        assert check_image(path) == (16, 16)
        assert load_image(path, 32).shape == (32, 32, 1)
