"""The fuzzer's in-process runs agree with real processes (tests/fuzz_harness.py), on cases
that gave a traceback before: run both ways on copies of one working folder, each gives the
same exit status, the same `error:` line and the same files afterwards."""
import io

import numpy as np
import pytest
from PIL import Image

from chestxray.core.paths import DATASET_DIR
from chestxray.nih.layout import IMAGES, IMAGES_POINTER

from fuzz_harness import (
    DATASET_TABLE, PARAMS_FILE, PREDICT_IMAGE, SOURCE, SOURCE_TABLE, Case, case_folder,
    fingerprints, make_template, outputs_of, predict_command, run_in_process, run_subprocess,
    saved_model, table_bytes, template_rows, violations,
)


def png(shape):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


NAME = template_rows()[0]["Image Index"]
POINTER = (DATASET_DIR / IMAGES_POINTER).as_posix()
CASES = {
    "params a list": Case("params", ("split",), {PARAMS_FILE.as_posix(): b"- split\n- train\n"}),
    "params in Latin-1": Case("params", ("stats",), {
        PARAMS_FILE.as_posix(): "# réglages à la main\n".encode("latin-1") + b"stats: {}\n"}),
    "0-byte label table": Case("table", ("download",), {SOURCE_TABLE.as_posix(): b""}),
    "Patient ID 1e400": Case("table", ("download",), {SOURCE_TABLE.as_posix(): table_bytes(
        [dict(row, **{"Patient ID": "1e400"}) if index == 0 else row
         for index, row in enumerate(template_rows())])}),
    "only No Finding": Case("table", ("split",), {DATASET_TABLE.as_posix(): table_bytes(
        [dict(row, **{"Finding Labels": "No Finding"}) for row in template_rows()])}),
    "PNG cut in its pixels": Case("image", ("download",), {
        (SOURCE / IMAGES / NAME).as_posix(): png((64, 64))[:1500]}),
    "split succeeds": Case("params", ("split",)),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("template"))


def run_both_ways(case, template, base, model_path=None):
    """[(outcome, violations, files after)] of ``case`` in process and as a process, each
    with the case folder's path replaced by ``<folder>``."""
    command = predict_command(model_path) if case.target == "predict" else case.command
    results = []
    for runner in (run_in_process, run_subprocess):
        with case_folder(template, base) as folder:
            for relative, content in case.files.items():
                (folder / relative).write_bytes(content)
            before = fingerprints(folder)
            outcome = runner(command, folder)
            after = fingerprints(folder)
            results.append((outcome.status,
                            [line.replace(str(folder.resolve()), "<folder>")
                             for line in outcome.stderr.splitlines() if line.startswith("error")],
                            violations(outcome, before, after, outputs_of(command)),
                            # The image pointer names the folder; dvclive's files hold no input.
                            {path: digest for path, digest in after.items()
                             if not path.startswith("metrics/") and path != POINTER}))
    return results


@pytest.mark.parametrize("name", CASES)
def test_in_process_runs_match_real_processes(template, tmp_path, name):
    in_process, real = run_both_ways(CASES[name], template, tmp_path)
    assert in_process[:3] == real[:3]
    assert real[2] == []
    assert (real[0] == 0) == (name == "split succeeds"), real[1]
    assert in_process[3] == real[3]


@pytest.mark.slow
def test_predict_in_process_matches_a_real_process(template, tmp_path):
    model = saved_model(tmp_path)
    case = Case("image", ("predict",), {PREDICT_IMAGE.as_posix(): png((1, 1))})
    in_process, real = run_both_ways(case, template, tmp_path, model_path=model)
    assert in_process[:3] == real[:3]
    assert real[0] == 1 and real[1] == [
        "error: radiograph.png: 1x1 pixels, under the 8-pixel minimum side: not a radiograph"]
