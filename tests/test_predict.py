"""The predict command on a tiny saved model: formats, odd images, bad files."""
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestxray import predict
from chestxray.__main__ import main
from chestxray.data.preprocessing import Preprocessing
from chestxray.explain.overlays import MAX_DISPLAY_SIDE, PANEL_GAP
from chestxray.model.network import build_model
from chestxray.model.saved import RECORD_ENTRY, ModelFileError, load_model, save_model
from chestxray.nih.labels import FINDINGS

from conftest import shared_file


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 32-px DenseNet121 in memory with its preprocessing, and saved as .keras.

    Tests share the in-memory model: loading DenseNet121 takes ~10 s on CPU,
    so only the command-line test loads the saved file.
    """
    model_path = tmp_path_factory.mktemp("model") / "model.keras"
    model, preprocessing = build_model(32), Preprocessing(32, "featurewise", 100.0, 50.0)
    save_model(model, preprocessing, model_path, "densenet121")
    return model, preprocessing, model_path


@pytest.fixture()
def images(tmp_path):
    """A folder of good images of several flavours plus one corrupt PNG."""
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8)).save(folder / "gray8.png")
    Image.fromarray(rng.integers(0, 65536, (64, 64), dtype=np.uint16)).save(folder / "gray16.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (90, 60), dtype=np.uint8)).save(
        folder / "nested" / "photo.JPG")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "notes.txt").write_text("ignored: not an image")
    return folder


def test_folder_with_a_corrupt_file(tiny_model, images, tmp_path, capsys):
    model, preprocessing, _ = tiny_model
    out = tmp_path / "predictions.csv"
    status = predict.run([images], model, preprocessing, out)
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.count("error:") == 1 and "corrupt.png" in captured.err
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", *FINDINGS]
    assert sorted(name.split("/")[-1] for name in table["image"]) == [
        "gray16.png", "gray8.png", "photo.JPG", "rgb.png"]
    probabilities = table[list(FINDINGS)].to_numpy()
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert "predicted 4 of 5 images" in captured.out and "1 failed" in captured.out


def test_json_output_gradcam_overlays_and_exit_status_zero(tiny_model, images, tmp_path):
    model, preprocessing, _ = tiny_model
    out, overlays = tmp_path / "predictions.json", tmp_path / "overlays"
    status = predict.run([images / "gray8.png", images / "rgb.png"], model, preprocessing, out,
                         gradcam_dir=overlays, top=2)
    assert status == 0
    records = json.loads(out.read_text())
    assert [record["image"].split("/")[-1] for record in records] == ["gray8.png", "rgb.png"]
    assert set(records[0]) == {"image", *FINDINGS}
    written = sorted(overlays.iterdir())
    assert len(written) == 4
    top_two = sorted(FINDINGS, key=lambda name: -records[0][name])[:2]
    assert {f"gray8_{name}.png" for name in top_two} <= {path.name for path in written}
    with Image.open(overlays / f"gray8_{top_two[0]}.png") as picture:
        # The source's own 70x50 pixels, plain beside the overlay.
        assert picture.size == (2 * 70 + PANEL_GAP, 50) and picture.mode == "RGB"


def test_same_image_gives_same_probabilities_whatever_its_encoding(tiny_model, tmp_path):
    model, preprocessing, _ = tiny_model
    gray = np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "b.png")
    Image.fromarray(np.repeat(gray[..., None], 3, axis=-1)).save(tmp_path / "c.png")
    table, failures = predict.predict_files(model, preprocessing, sorted(tmp_path.glob("*.png")))
    assert not failures
    probabilities = table[list(FINDINGS)].to_numpy()
    assert np.allclose(probabilities[0], probabilities[1], atol=1e-5)
    assert np.allclose(probabilities[0], probabilities[2], atol=1e-5)


def test_command_line(tiny_model, images, tmp_path, capsys):
    _, _, model_path = tiny_model
    with pytest.raises(ModelFileError, match="model file not found"):
        main(["predict", str(images), "--model", str(tmp_path / "missing.keras"),
              "--out", str(tmp_path / "p.csv")])
    with pytest.raises(predict.PredictError, match=r"\.csv or \.json"):
        main(["predict", str(images), "--model", str(model_path),
              "--out", str(tmp_path / "p.xlsx")])
    with pytest.raises(SystemExit) as exit_status:
        main(["predict", str(images / "missing.png"), str(images / "rgb.png"), "--model",
              str(model_path), "--out", str(tmp_path / "p.csv")])
    assert exit_status.value.code == 1
    assert "missing.png: file not found" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1


def test_real_full_resolution_radiographs(tiny_model, tmp_path):
    model, preprocessing, _ = tiny_model
    first = shared_file("nih-fullres", "00000001_000.png")
    second = shared_file("nih-fullres", "00027426_000.png")
    out = tmp_path / "real.csv"
    overlays = tmp_path / "overlays"
    assert predict.run([first, second], model, preprocessing, out, gradcam_dir=overlays,
                       top=1) == 0
    assert len(pd.read_csv(out)) == 2
    # Each radiograph keeps its own resolution in its overlay panel.
    for source in (first, second):
        with Image.open(source) as original:
            width, height = original.size
        assert max(width, height) <= MAX_DISPLAY_SIDE
        with Image.open(next(overlays.glob(f"{source.stem}_*.png"))) as picture:
            assert picture.size == (2 * width + PANEL_GAP, height)


@pytest.mark.parametrize("damage", ["truncated", "not a zip"])
def test_corrupt_model_file_is_one_clear_error(tiny_model, tmp_path, damage):
    path = tmp_path / "model.keras"
    saved = tiny_model[2].read_bytes()
    path.write_bytes(saved[:len(saved) // 2] if damage == "truncated" else b"PK\x03\x04 junk")
    with pytest.raises(ModelFileError) as error:
        load_model(path)
    assert str(error.value) == (f"{path}: not a .keras model archive (damaged, truncated or "
                                "another kind of file)")


def test_overlays_of_images_sharing_a_name_are_all_kept(tiny_model, tmp_path, capsys):
    model, preprocessing, _ = tiny_model
    for folder in ("a", "b", "b/c"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        Image.fromarray(np.full((40, 40), 90, np.uint8)).save(tmp_path / "in" / folder / "x.png")
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(tmp_path / "in" / "a" / "x.jpg")
    overlays = tmp_path / "overlays"
    assert predict.run([tmp_path / "in"], model, preprocessing, tmp_path / "p.csv",
                       gradcam_dir=overlays, top=1) == 0
    # Four copies of one image: one top finding.
    top = pd.read_csv(tmp_path / "p.csv")[list(FINDINGS)].iloc[0].idxmax()
    assert sorted(str(path.relative_to(overlays)) for path in overlays.rglob("*.png")) == [
        f"a/x_jpg_{top}.png", f"a/x_png_{top}.png", f"b/c/x_{top}.png", f"b/x_{top}.png"]
    assert "4 Grad-CAM overlays" in capsys.readouterr().out


def test_overlay_stems_keep_single_folders_plain():
    assert predict.overlay_stems(["img/a.png", "img/b.png"]) == [Path("a"), Path("b")]
    assert predict.overlay_stems(["one.png"]) == [Path("one")]
    assert predict.overlay_stems([]) == []


def test_when_no_image_can_be_read_the_previous_output_stays(tiny_model, tmp_path, capsys):
    model, preprocessing, _ = tiny_model
    out = tmp_path / "predictions.csv"
    out.write_text("image,Atelectasis\nearlier.png,0.5\n")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert predict.run([tmp_path / "broken.png"], model, preprocessing, out) == 1
    captured = capsys.readouterr()
    assert captured.err.count("error:") == 1 and "broken.png" in captured.err
    assert out.read_text() == "image,Atelectasis\nearlier.png,0.5\n"
    assert f"predicted 0 of 1 images; {out} was left as it was" in captured.out


def test_model_of_another_architecture_is_refused(tmp_path):
    inputs = keras.Input((8,))
    other = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    path = tmp_path / "other.keras"
    other.save(path)
    with pytest.raises(ModelFileError, match="not this pipeline's classifier"):
        load_model(path)


def test_overlays_of_a_large_image_are_capped(tiny_model, tmp_path):
    model, preprocessing, _ = tiny_model
    Image.fromarray(np.zeros((1500, 3000), np.uint8)).save(tmp_path / "wide.png")
    written = predict.write_overlays(model, preprocessing, predict.predict_files(
        model, preprocessing, [tmp_path / "wide.png"])[0], tmp_path / "out", top=1)
    with Image.open(written[0]) as picture:
        assert picture.size == (2 * MAX_DISPLAY_SIDE + PANEL_GAP, MAX_DISPLAY_SIDE // 2)


def test_the_model_file_records_its_preprocessing(tiny_model, tmp_path):
    model, _, _ = tiny_model
    path = tmp_path / "samplewise.keras"
    save_model(model, Preprocessing(32, "samplewise"), path, "densenet121")
    assert load_model(path)[1] == Preprocessing(32, "samplewise")


def test_a_model_without_its_record_is_refused(tiny_model, tmp_path):
    model, _, _ = tiny_model
    path = tmp_path / "bare.keras"
    model.save(path)
    with pytest.raises(ModelFileError, match=f"no {RECORD_ENTRY} record"):
        load_model(path)
