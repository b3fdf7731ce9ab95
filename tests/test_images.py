"""Every PNG flavour decodes to the same gray image; bad files get a clear error."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from chestxray.data.images import ImageError, read_gray
from chestxray.data.preprocessing import decode_gray, resize

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
