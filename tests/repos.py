"""Throw-away git + DVC repositories of this working tree, for tests that run `dvc` itself."""
import os
import subprocess
import sys
from pathlib import Path

from dvc.config import Config

from scratch_repo import copy_working_tree, set_params

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
# Small enough for a full `dvc repro` in about a minute on 2 CPU cores. The pipeline's
# mechanics do not depend on the backbone (the default's are checked by `dvc repro` itself and
# tests/test_backbones.py), so the tiny study trains the one quickest to trace and load:
# MobileNetV3Small trains the tiny study in 21-24 s against EfficientNetV2B0's 39 s, and
# evaluates and explains it in 0.76 and 0.70 of the time. Its batch-norm moving statistics
# must follow the few steps it trains: at momentum 0.9 every image gets the same scores, at
# 0.1-0.3 most scores saturate at 0 or 1, at 0.5 they are graded (docs/training.md#the-backbone).
TINY_PARAMS = {"download.image_size": 64, "split.min_positive_patients": 1,
               "train.image_size": 32, "train.backbone": "mobilenetv3small",
               "train.batchnorm_momentum": 0.5, "train.epochs": 1, "train.batch_size": 16,
               "evaluate.bootstrap_resamples": 20, "gradcam.images_per_class": 1}


def run(command, cwd, env=None, fails=False):
    """Run ``command`` in ``cwd`` with this venv's tools and ``cwd``'s own package on the path.

    PYTHONPATH makes stages import the copy's ``src`` rather than the editable install's;
    DVC passes it on to queued experiments, which run in temp dirs under .dvc/tmp/exps.
    Returns stdout and stderr together; fails the test on a non-zero exit, or with
    ``fails`` on a zero one.
    """
    env = dict(os.environ, **(env or {}),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(Path(cwd) / "src"))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert (result.returncode != 0) == fails, \
        f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def clone_working_tree(repo):
    """Make ``repo`` a git repository holding this working tree's files, as a clone would."""
    copy_working_tree(repo)
    run(["git", "init", "-q"], repo)
    run(GIT + ["add", "-A"], repo)
    run(GIT + ["commit", "-qm", "clone"], repo)
    return repo


def reproduce_tiny_study(repo):
    """Replace ``repo``'s study with a 40-patient one (as docs/real-data.md describes), `dvc repro`
    it with :data:`TINY_PARAMS` and commit; returns the repro's log."""
    run([sys.executable, "-m", "chestxray.acquire.embedded", "--out", "data", "--patients", "40",
         "--min-positive-patients", "2"], repo)
    run(["dvc", "add", "-q", "data"], repo)
    run(["dvc", "push", "-q", "-r", "embedded", "data.dvc"], repo)
    set_params(repo, TINY_PARAMS)
    log = run(["dvc", "repro"], repo)
    run(GIT + ["add", "-A"], repo)
    run(GIT + ["commit", "-qm", "tiny study, reproduced"], repo)
    return log


def clone_sharing_cache(source, destination):
    """``git clone`` of ``source`` whose DVC cache is ``source``'s, outputs checked out."""
    run(["git", "clone", "-q", str(source), str(destination)], source)
    # `dvc cache dir --local`, without starting a dvc process (tens of clones a run).
    with Config(dvc_dir=str(Path(destination) / ".dvc")).edit("local") as config:
        config["cache"]["dir"] = str(source / ".dvc" / "cache")
    run(["dvc", "checkout", "-q"], destination)
    return destination
