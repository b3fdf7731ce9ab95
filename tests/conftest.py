"""Shared paths (the real NIH material beside the repository, when present) and fixtures."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from filelock import FileLock

# Two xdist workers, the fault matrix's two lanes and the stages they start share two cores,
# and TensorFlow's intra-op pool, sized for the whole machine, spins for cores others hold. One
# thread per process (inherited by every stage and command the tests start): three concurrent
# tiny trainings took a median 0.86 of the CPU time (docs/benchmarks.md#tests).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# The longest test files first (pytest-xdist hands each worker a file when it is nearly done
# with its last; --no-loadscope-reorder keeps this order), so that the two workers end
# together rather than one running the last long file alone. test_faults makes the tiny study
# that test_pr_report, test_pipeline and test_experiments share (one to two minutes); the
# three files before them do not need it and keep the other worker busy meanwhile (with
# test_training alone, it then waited half a minute for the tiny study).
LONG_FIRST = ("test_faults.py", "test_training.py", "test_backbones.py", "test_checkpoints.py",
              "test_pr_report.py", "test_pipeline.py", "test_experiments.py")


class TinyRepro(NamedTuple):
    path: Path
    log: str


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)
    items.sort(key=rank)


def shared_file(*parts):
    """Path under ../shared/data, or skip the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real NIH data not available at {path}")
    return path


def download_params(**overrides):
    """The repository's ``download:`` params (its defaults) with ``overrides``."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())["download"]
    return {**params, **overrides}


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {path.relative_to(folder): path.read_bytes()
            for path in folder.rglob("*") if path.is_file()}


@pytest.fixture(scope="session")
def tiny_repro(tmp_path_factory, worker_id):
    """A repository of this working tree with a tiny study, fully reproduced and committed.

    ``(path, log)``: ``log`` is the output of its one `dvc repro`. Made once per test run (a
    full repro costs minutes) and shared: tests clone it (``repos.clone_sharing_cache``)
    and never change it. Its DVC cache holds every output. Under pytest-xdist the first
    worker to ask makes it in the run's common temp folder while the others wait on a lock.
    """
    from repos import clone_working_tree, reproduce_tiny_study
    run_root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        run_root = run_root.parent
    path, log = run_root / "tiny", run_root / "tiny-repro.log"
    with FileLock(run_root / "tiny.lock"):
        if not log.exists():
            # A worker that failed to make it leaves a partial folder for the next to replace.
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            log.write_text(reproduce_tiny_study(clone_working_tree(path)))
    return TinyRepro(path, log.read_text())


@pytest.fixture(scope="module")
def fuzz_folders(tmp_path_factory):
    """(template working folder, folder for the fuzz cases' copies); tests/fuzz_harness.py."""
    from fuzz_harness import make_template
    return make_template(tmp_path_factory.mktemp("template")), tmp_path_factory.mktemp("cases")


def assert_predict_gives_the_evaluated_probabilities(repo):
    """`python -m chestxray predict` on the test images ``repo``'s evaluate stage scored gives
    its outputs/predictions.csv to 1e-5, with no flag telling predict how the model was made."""
    import numpy as np
    import pandas as pd

    from chestxray.core.paths import DATASET_DIR, PREDICTIONS_FILE
    from chestxray.nih import layout
    from chestxray.nih.labels import FINDINGS
    evaluated = pd.read_csv(repo / PREDICTIONS_FILE).set_index("Image Index")
    paths = layout.read_dataset(repo / DATASET_DIR).set_index("Image Index")["path"]
    files = [str(repo / paths[name]) for name in evaluated.index]
    subprocess.run([sys.executable, "-m", "chestxray", "predict", *files, "--out", "predicted.csv"],
                   cwd=repo, check=True, capture_output=True)
    predicted = pd.read_csv(repo / "predicted.csv")
    predicted.index = [name.rsplit("/", 1)[-1] for name in predicted.pop("image")]
    assert len(evaluated) > 5 and list(predicted.index) == list(evaluated.index)
    np.testing.assert_allclose(predicted[list(FINDINGS)].to_numpy(),
                               evaluated[list(FINDINGS)].to_numpy(), rtol=0, atol=1e-5)


def stage_process(stage, cwd, *, check=False, **options):
    """Run ``stages/<stage>.py`` in ``cwd``; the CompletedProcess, output captured as text."""
    return subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py")],
                          cwd=cwd, capture_output=True, text=True, check=check, **options)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder where download and split have run on a small embedded study."""
    from repos import set_params
    root = tmp_path_factory.mktemp("workspace")
    shutil.copy(REPO / "params.yaml", root)
    set_params(root, {"download.image_size": 64, "split.min_positive_patients": 1})
    subprocess.run([sys.executable, "-m", "chestxray.acquire.embedded", "--out", "data",
                    "--patients", "30", "--min-positive-patients", "1"], cwd=root, check=True)
    for stage in ("download", "split"):
        stage_process(stage, root, check=True)
    return root
