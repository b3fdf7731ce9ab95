"""One preprocessing path: what Grad-CAM and predict feed a model is what training and
evaluation fed it, for either normalisation and any image encoding."""
import numpy as np
import pytest
from PIL import Image

from chestxray.data.dataset import image_dataset
from chestxray.data.images import ImageError
from chestxray.data.preprocessing import Preprocessing, load_display_image, preprocess_files

SIZE = 32


@pytest.fixture
def radiographs(tmp_path):
    """Six images of other sizes than the model's, as 8-bit, 16-bit, RGB PNG and JPEG."""
    rng = np.random.default_rng(3)
    paths = []
    for index in range(6):
        gray = rng.integers(0, 256, (45 + 7 * index, 61 - 3 * index), dtype=np.uint8)
        if index % 3 == 1:
            picture, suffix = Image.fromarray(gray.astype(np.uint16) * 257), ".png"
        elif index % 3 == 2:
            picture, suffix = Image.fromarray(np.repeat(gray[..., None], 3, axis=-1)), ".png"
        else:
            picture, suffix = Image.fromarray(gray), ".jpg" if index == 3 else ".png"
        path = tmp_path / f"{index}{suffix}"
        picture.save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("preprocessing", [
    Preprocessing(SIZE, "featurewise", 121.5, 57.25), Preprocessing(SIZE, "samplewise")],
    ids=["featurewise", "samplewise"])
def test_files_are_preprocessed_exactly_as_the_dataset_does(radiographs, preprocessing):
    labels = np.zeros((len(radiographs), 14), np.float32)
    batches = [images.numpy() for images, _ in
               image_dataset(radiographs, labels, preprocessing, batch_size=4)]
    np.testing.assert_allclose(preprocess_files(radiographs, preprocessing),
                               np.concatenate(batches), rtol=0, atol=1e-6)


def test_the_two_normalisations_differ(radiographs):
    featurewise = preprocess_files(radiographs, Preprocessing(SIZE, "featurewise", 120.0, 60.0))
    samplewise = preprocess_files(radiographs, Preprocessing(SIZE, "samplewise"))
    assert np.abs(featurewise - samplewise).max() > 0.1


def test_a_damaged_file_is_named(radiographs, tmp_path):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(radiographs[0], "rb").read()[:60])
    with pytest.raises(ImageError, match="truncated.png"):
        preprocess_files([radiographs[1], truncated], Preprocessing(SIZE, "samplewise"))


def test_display_image_keeps_the_source_resolution_up_to_the_cap(radiographs, tmp_path):
    assert load_display_image(radiographs[0], 1024).shape == (45, 61)
    Image.fromarray(np.zeros((3000, 2000), np.uint8)).save(tmp_path / "large.png")
    assert load_display_image(tmp_path / "large.png", 1024).shape == (1024, 683)
