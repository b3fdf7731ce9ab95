"""Fuzzed image files (cut at any offset, flipped bytes with and without fixed checksums,
inserted and dropped chunks, huge declared sizes, 1x1, 16-bit, RGBA, palette, other formats,
random bytes) through the download (local source) and stats stages and predict: each run
succeeds, or stops with one `error:` line, and leaves every file as it was; and every PNG the
download stage accepts decodes as training decodes it (tests/fuzz_harness.py)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz_harness import (
    CI_SETTINGS, decode_agreement, image_cases, image_files, run_case, saved_model, train_images,
)


@pytest.fixture(scope="module")
def folders(fuzz_folders, tmp_path_factory):
    """:func:`fuzz_folders` and a model file for predict."""
    return (*fuzz_folders, saved_model(tmp_path_factory.mktemp("model")))


@settings(CI_SETTINGS, max_examples=100)
@given(data=st.data())
def test_fuzzed_images_stop_with_one_line_and_keep_every_file(folders, data):
    template, cases, model = folders
    case = data.draw(image_cases(train_images(template)), label="case")
    outcome, problems = run_case(case, template, cases, model_path=model)
    assert not problems, f"{case.command}: {problems}\n{outcome.stderr[-3000:]}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("decode")


@settings(CI_SETTINGS, max_examples=1000)
@given(content=image_files())
def test_every_png_the_download_accepts_decodes_as_training_decodes_it(scratch, content):
    assert not decode_agreement(content, scratch)
