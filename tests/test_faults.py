"""Fault matrix: each stage under a real `dvc repro`, and `python -m chestxray predict`,

* killed (SIGKILL of its own process) in the middle of its work and late (while it commits its
  outputs),
* interrupted by Ctrl-C (SIGINT to the process group, as a terminal sends it),
* lost with its machine (SIGKILL of the whole `dvc repro` process group; split and train),

keeps the last good outputs and metrics byte-identical, prints no traceback, and `dvc repro`
then completes, with training resumed after its last finished epoch. docs/reliability.md
("Fault matrix") has the table of cells and tests.

Faults are injected at named functions by tests/fault_injection/sitecustomize.py, in the
processes `dvc repro` starts (tests/faults.py). Each target's faults run one after another in
one clone of the tiny study (``chains``), in two lanes at once; the tests check what each step
left. A fault that never fired fails its cell: the fault point must be renamed with the code.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import pytest
import yaml

from conftest import SHARED_DATA, shared_file
from faults import (
    PREDICT_PROGRAM, RUNNING, STAGE_PROGRAM, Fault, Outcome, differences, digests, environment,
    hidden_leftovers, in_a_terminal, run_with_fault,
)
from repos import clone_sharing_cache, set_params

STAGES = ("download", "split", "stats", "train", "evaluate", "gradcam")
TARGETS = (*STAGES, "predict")
NIH_SAMPLE = "nih-sample-64"
DATA_OUTPUTS = ("outputs/dataset", "outputs/split.csv", "outputs/stats.json")
LANES = 2


def replaced_by(temporary, path):
    """The exchange that swaps folder ``temporary`` (a regular expression) in for ``path``."""
    return Fault("chestxray.core.atomic:_exchange",
                 match=rf"\(PosixPath\('{temporary}'\), PosixPath\('{re.escape(path)}'\)\)")


def file_replaced(path):
    """The rename of a complete temporary file over ``path`` (atomic_path)."""
    return Fault("os:replace", match=rf", PosixPath\('{re.escape(path)}'\)\)")


def metrics_published(stage):
    return replaced_by(rf"metrics/\.staging/{stage}", f"metrics/{stage}")


# A stage's work done, dvclive's last files written: its outputs are about to be renamed in.
COMMIT = Fault("chestxray.core.atomic:PendingOutputs.commit")


@dataclass(frozen=True)
class Plan:
    """How one stage is interrupted.

    ``rerun``: params under which it reruns and would write other outputs than the last good
    ones; ``middle``: a point in the middle of its work (SIGKILL there); ``during``: where the
    process group is signalled (default ``middle``); ``late``: ``{"late": point}``, once the
    work is done, before any output is put in place, and for stages with file outputs and
    metrics ``"mid-commit"``: the files renamed in, the metrics folder not yet swapped in;
    ``lost_machine``: whether the process group is also SIGKILLed at ``during``.

    No cell repeats another's check. A kill just after the params are read would be a weaker
    ``middle``: the same process, killed before anything the middle point has done. A lost
    machine kills the stage where ``middle`` does and DVC with it, and what DVC leaves (its
    rwlock) does not depend on the stage: split checks it, and train, whose ``during`` is
    another point (the resumed run). Without DVC (predict) it is ``middle`` again.
    """
    rerun: dict
    middle: Fault
    late: dict
    during: Optional[Fault] = None
    lost_machine: bool = False

    def faults(self):
        """(name, fault) in the order they run; the late ones last, as they may break things."""
        during = self.during or self.middle
        cells = [("middle", self.middle),
                 ("ctrl-c", Fault(during.at, during.when, during.match, signal.SIGINT))]
        if self.lost_machine:
            cells.append(("lost-machine",
                          Fault(during.at, during.when, during.match, signal.SIGKILL)))
        return [*cells, *self.late.items()]


PLANS = {
    "download": Plan(
        {"download.image_size": 32},
        # The render workers are writing images into the new folder.
        Fault("concurrent.futures.process:ProcessPoolExecutor.map", when="after"),
        {"late": replaced_by(r"outputs/\.dataset\.[^']+\.tmp", "outputs/dataset")}),
    "split": Plan(
        {"split.seed": 7},
        Fault("chestxray.data.split:split_patients"),
        {"late": COMMIT, "mid-commit": metrics_published("split")}, lost_machine=True),
    "stats": Plan(
        {"stats.max_images": 50},
        Fault("chestxray.data.images:read_gray:20"),  # reading the train images
        {"late": COMMIT, "mid-commit": metrics_published("stats")}),
    "train": Plan(
        # Bounded epochs (3 of the tiny study's 8 batches): the stage hands them to fit, and a
        # resumed run keeps them.
        {"train.epochs": 2, "train.steps_per_epoch": 3},
        # Epoch 1 of 2 is checkpointed and logged.
        Fault("chestxray.model.callbacks:LiveMetrics.on_epoch_end", when="after"),
        # late: the resumed run has trained epoch 2 and puts the model in place;
        # mid-commit: it resumes after epoch 2, saves, renames the model in and publishes
        # metrics/train.
        {"late": COMMIT, "mid-commit": metrics_published("train")},
        # The resumed run starts epoch 2, inside model.fit.
        during=Fault("chestxray.model.callbacks:LearningRateControl.on_epoch_begin"),
        lost_machine=True),
    "evaluate": Plan(
        {"evaluate.bootstrap_seed": 7},
        Fault("chestxray.model.saved:probabilities", when="after"),  # val scored, test next
        {"late": COMMIT, "mid-commit": metrics_published("evaluate")}),
    "gradcam": Plan(
        {"gradcam.iou_threshold": 0.4},
        Fault("chestxray.explain.gradcam:explain_files:2"),  # the overlays' heatmaps
        {"late": metrics_published("gradcam")}),  # no file outputs: one swap
}

PLANS["predict"] = Plan(
    {},
    Fault("chestxray.data.preprocessing:load_image:20"),  # two batches of 8 scored
    {"late": file_replaced("out.csv")})

CELLS = [(target, name) for target in TARGETS for name, _ in PLANS[target].faults()]


@dataclass
class Step:
    outcome: Outcome
    before: dict
    after: dict
    rwlock: Optional[dict] = None
    train: Optional[dict] = None


@dataclass
class Chain:
    path: Path
    steps: dict = field(default_factory=dict)
    recovery: list = field(default_factory=list)  # Outcomes of the commands run after the faults
    final: dict = field(default_factory=dict)
    train: Optional[dict] = None


def run_plain(command, cwd, timeout=900):
    """Run ``command`` without a fault (same environment as the faulted runs)."""
    return run_with_fault(command, cwd, None, None, timeout=timeout)


def rwlock(repo):
    path = repo / ".dvc" / "tmp" / "rwlock"
    return json.loads(path.read_text()) if path.exists() else None


def tsv_steps(folder):
    """The dvclive steps logged in ``folder``'s train loss plot, or None."""
    path = folder / "plots" / "metrics" / "train" / "loss.tsv"
    return list(pd.read_csv(path, sep="\t")["step"]) if path.exists() else None


def yaml_or_none(path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


def train_progress(repo):
    """The checkpoint and the dvclive staging folder an interrupted training left."""
    state = repo / "outputs" / "checkpoints" / "state.json"
    staging = repo / "metrics" / ".staging" / "train"
    return {"epochs_done": json.loads(state.read_text())["epochs_done"] if state.exists() else None,
            "staging_params": yaml_or_none(staging / "params.yaml"),
            "staging_steps": tsv_steps(staging)}


def stage_chain(stage, tiny, path):
    """Every fault of ``stage`` in turn in one clone of ``tiny``, then the recovery."""
    repo = clone_sharing_cache(tiny, path / "repo")
    plan = PLANS[stage]
    set_params(repo, plan.rerun)
    chain = Chain(repo)
    for name, fault in plan.faults():
        before = digests(repo)
        outcome = run_with_fault(["dvc", "repro", stage], repo, fault,
                                 STAGE_PROGRAM.format(stage=stage))
        chain.steps[name] = Step(outcome, before, digests(repo), rwlock(repo),
                                 train_progress(repo) if stage == "train" else None)
    chain.recovery.append(run_plain(["dvc", "repro", stage], repo))
    if stage == "train":
        chain.train = {"params": yaml_or_none(repo / "metrics" / "train" / "params.yaml"),
                       "steps": tsv_steps(repo / "metrics" / "train")}
    if stage in ("download", "split", "stats"):
        # Back to the tiny study's params: the stage reruns and must give its bytes again.
        tiny_params = yaml.safe_load((tiny / "params.yaml").read_text())
        set_params(repo, {key: tiny_params[key.split(".")[0]][key.split(".")[1]]
                          for key in plan.rerun})
        chain.recovery.append(run_plain(["dvc", "repro"], repo))
    chain.recovery.append(run_plain(["dvc", "status", stage], repo))
    chain.final = digests(repo)
    return chain


def predict_chain(tiny, path):
    """predict's faults: a previous --out file must stay as it was."""
    work = path / "work"
    work.mkdir()
    images = sorted(str(image) for image in (tiny / "outputs" / "dataset" / "images").glob("*.png"))
    command = [sys.executable, "-m", "chestxray", "predict", "--model",
               str(tiny / "outputs" / "model.keras"), "--batch-size", "8"]
    chain = Chain(work)
    overlays = [*command, *images[:3], "--gradcam", "overlays", "--top", "1"]
    # The previous run: the --out file and overlays the faulted runs must leave as they are.
    chain.recovery.append(run_plain([*overlays, "--out", "out.csv"], work))
    for name, fault in PLANS["predict"].faults():
        before = digests(work, folders=(), files=("out.csv",))
        outcome = run_with_fault([*command, *images[:80], "--out", "out.csv"], work, fault,
                                 PREDICT_PROGRAM)
        chain.steps[name] = Step(outcome, before, digests(work, folders=(), files=("out.csv",)))
    # The previous run again, killed while it writes its second overlay.
    before = digests(work, folders=("overlays",), files=())
    outcome = run_with_fault([*overlays, "--out", "o.csv"], work, Fault("PIL.ImageFile:_save:2"),
                             PREDICT_PROGRAM)
    chain.steps["overlay"] = Step(outcome, before, digests(work, folders=("overlays",), files=()))
    chain.recovery.append(run_plain([*overlays, "--out", "o.csv"], work))  # the user runs it again
    chain.recovery.append(run_plain([*command, *images[:80], "--out", "out.csv"], work))
    chain.final = digests(work, folders=("overlays",), files=("out.csv",))
    return chain


def nih_sample_chain(tiny, path):
    """The real NIH sample: training killed after epoch 1 of 2, then `dvc repro` again."""
    repo = clone_sharing_cache(tiny, path / "repo")
    set_params(repo, {"download.source": "local",
                      "download.local_dir": str((SHARED_DATA / NIH_SAMPLE).resolve()),
                      "train.epochs": 2})
    chain = Chain(repo)
    chain.recovery.append(run_plain(["dvc", "repro", "stats"], repo))
    before = digests(repo)
    outcome = run_with_fault(["dvc", "repro", "train"], repo, PLANS["train"].middle,
                             STAGE_PROGRAM.format(stage="train"))
    chain.steps["middle"] = Step(outcome, before, digests(repo), rwlock(repo),
                                 train_progress(repo))
    chain.recovery.append(run_plain(["dvc", "repro", "train"], repo))
    chain.train = {"params": yaml_or_none(repo / "metrics" / "train" / "params.yaml"),
                   "steps": tsv_steps(repo / "metrics" / "train")}
    return chain


# Longest first, so that the two lanes end close together.
CHAINS = ("train", NIH_SAMPLE, "evaluate", "gradcam", "predict", "download", "stats", "split")


class Matrix:
    def __init__(self, futures):
        self.futures = futures

    def __getitem__(self, target):
        return self.futures[target].result()


@pytest.fixture(scope="module")
def matrix(request, tiny_repro, tmp_path_factory):
    """The chains this session's selected tests need, started at once in ``LANES`` threads."""
    wanted = {item.callspec.params["target"] for item in request.session.items
              if item.module.__name__ == __name__ and hasattr(item, "callspec")
              and "target" in item.callspec.params}
    if not (SHARED_DATA / NIH_SAMPLE).is_dir():
        wanted.discard(NIH_SAMPLE)
    pool = ThreadPoolExecutor(max_workers=LANES)
    futures = {}
    for target in CHAINS:
        if target not in wanted:
            continue
        path = tmp_path_factory.mktemp(f"faults-{target}")
        if target == "predict":
            futures[target] = pool.submit(predict_chain, tiny_repro.path, path)
        elif target == NIH_SAMPLE:
            futures[target] = pool.submit(nih_sample_chain, tiny_repro.path, path)
        else:
            futures[target] = pool.submit(stage_chain, target, tiny_repro.path, path)
    yield Matrix(futures)
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def tiny_digests(tiny_repro):
    return digests(tiny_repro.path)


def data_outputs(found):
    return {path: digest for path, digest in found.items() if path.startswith(DATA_OUTPUTS)}


def check_kept(step):
    """The fault fired, and every output and metric is as it was before the run."""
    assert step.outcome.fired, f"the fault never fired:\n{step.outcome.output}"
    changed = differences(step.before, step.after)
    assert changed == [], f"{changed}\n{step.outcome.output}"
    assert step.outcome.leftover == [], "processes of the run still alive after it ended"


def check_mid_commit(step):
    """Killed between the renames of a commit: the stage's file outputs may already be new,
    its metrics are the last good run's, and no file is half-written."""
    assert step.outcome.fired, f"the fault never fired:\n{step.outcome.output}"
    changed = differences(step.before, step.after)
    assert all(change.startswith("changed outputs/") for change in changed), \
        f"{changed}\n{step.outcome.output}"
    assert step.outcome.leftover == [], "processes of the run still alive after it ended"


def next_step(target, name):
    names = [step for step, _ in PLANS[target].faults()]
    return names[names.index(name) + 1]


def stage_exit(output, target):
    """The stage's exit status as dvc reports it. dvc runs a stage's command in $SHELL, or in
    /bin/sh when none is set (as in CI): bash hands the process over to the command, so a
    signal shows as its negative number; dash waits for it, reports a kill as 128 + N and
    dies of a Ctrl-C itself after the stage has exited 130."""
    found = re.search(rf"failed to run: python stages/{target}\.py, exited with (-?\d+)", output)
    assert found, output
    return int(found.group(1))


def kill_cells(kind):
    return [pytest.param(target, name, id=f"{target}-{name}") for target, name in CELLS
            if (name in ("ctrl-c", "lost-machine")) == (kind != "kill") and
            (kind == "kill" or name == kind)]


@pytest.mark.slow
@pytest.mark.parametrize("target, point", kill_cells("kill"))
def test_sigkill_keeps_the_last_good_outputs(matrix, target, point):
    step = matrix[target].steps[point]
    if point == "mid-commit":
        check_mid_commit(step)
    else:
        check_kept(step)
    if target == "predict":
        assert step.outcome.returncode == -signal.SIGKILL
    else:
        assert stage_exit(step.outcome.output, target) in (-signal.SIGKILL, 128 + signal.SIGKILL)
    assert "Traceback" not in step.outcome.output


@pytest.mark.slow
@pytest.mark.parametrize("target, point", kill_cells("lost-machine"))
def test_lost_machine_keeps_the_last_good_outputs(matrix, target, point):
    """SIGKILL of the whole process group: dvc dies too and leaves its rwlock behind."""
    step = matrix[target].steps[point]
    check_kept(step)
    assert step.outcome.returncode == -signal.SIGKILL
    # dvc's locks (.dvc/tmp/rwlock) still name the killed dvc; the next `dvc repro` sees that
    # no process has its PID, says so and goes on.
    assert {info["pid"] for info in step.rwlock["write"].values()} == {step.outcome.pid}
    following = matrix[target].steps[next_step(target, point)].outcome.output
    assert re.search(rf"WARNING: Process '\S*dvc repro {target}' with \(Pid "
                     rf"{step.outcome.pid}\), in RWLock-file '[^']+' had been killed\. "
                     r"Auto removed it from the lock file\.", following), following


@pytest.mark.slow
@pytest.mark.parametrize("target, point", kill_cells("ctrl-c"))
def test_ctrl_c_is_one_line_and_keeps_the_last_good_outputs(matrix, target, point):
    step = matrix[target].steps[point]
    check_kept(step)
    output = step.outcome.output
    assert "Traceback" not in output, output
    assert len(re.findall(r"^error: interrupted; ", output, re.MULTILINE)) == 1, output
    if target == "predict":
        assert step.outcome.returncode == 130
    else:
        assert stage_exit(output, target) in (130, -signal.SIGINT)
        assert step.outcome.returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("target", STAGES)
def test_dvc_repro_completes_after_the_faults(matrix, tiny_digests, target):
    """After all of a stage's faults, `dvc repro` completes; dvc's stale locks of the lost
    machine are removed with a warning; the data stages' outputs are the tiny study's bytes."""
    chain = matrix[target]
    for outcome in chain.recovery:
        assert outcome.returncode == 0, outcome.output
    assert f"Running stage '{target}'" in chain.recovery[0].output
    assert "Data and pipelines are up to date." in chain.recovery[-1].output
    assert data_outputs(chain.final) == data_outputs(tiny_digests)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_no_temporary_is_left_once_a_run_succeeds(matrix, target):
    """What the killed runs left under temporary names (a 30 MB model for train, a whole
    dataset folder for download) is gone once a run succeeds."""
    chain = matrix[target]
    folders = (".",) if target == "predict" else ("outputs", "metrics")
    left = hidden_leftovers(chain.path, folders)
    assert left == [], left


@pytest.mark.slow
@pytest.mark.parametrize("target", ["train"])
def test_training_resumes_after_the_last_finished_epoch(matrix, target):
    """Killed after epoch 1 of 2 (each of 3 batches): the next runs (Ctrl-C'd, lost, killed
    while committing) resume at epoch 2, of 3 batches too, and continue dvclive's steps; killed
    while committing a finished training, the rerun trains nothing again."""
    chain = matrix[target]
    assert chain.steps["middle"].train["epochs_done"] == 1
    assert chain.steps["middle"].train["staging_steps"] == [0]
    for name in ("ctrl-c", "lost-machine"):  # stopped as epoch 2 began
        assert chain.steps[name].train["staging_params"]["resumed_at_epoch"] == 1, name
        assert chain.steps[name].train["epochs_done"] == 1, name
    late = chain.steps["late"]  # trained epoch 2, killed before putting the model in place
    assert late.train["staging_params"]["resumed_at_epoch"] == 1
    assert "Epoch 1/2" not in late.outcome.output and "Epoch 2/2" in late.outcome.output
    # Keras' line at the epoch's end (fit's verbose 2): steps run / steps an epoch.
    assert re.findall(r"^(\d+)/(\d+) - ", late.outcome.output, re.MULTILINE) == [("3", "3")]
    assert late.train["epochs_done"] == 2
    assert late.train["staging_steps"] == [0, 1]
    assert chain.steps["mid-commit"].train["staging_params"]["resumed_at_epoch"] == 2
    # mid-commit was killed while it published the finished training: the rerun must find the
    # checkpoint of epoch 2 and train nothing again.
    resumed = chain.train["params"]["resumed_at_epoch"]
    assert resumed == 2, f"the rerun resumed at epoch {resumed}:\n{chain.recovery[0].output}"
    assert chain.train["steps"] == [0, 1]
    assert "trained mobilenetv3small for 2 epochs of 3 steps on CPU" in chain.recovery[0].output


@pytest.mark.slow
@pytest.mark.parametrize("target", [NIH_SAMPLE])
def test_training_on_the_real_sample_resumes_after_the_last_finished_epoch(matrix, target):
    shared_file(NIH_SAMPLE)
    chain = matrix[target]
    assert chain.recovery[0].returncode == 0, chain.recovery[0].output
    step = chain.steps["middle"]
    check_kept(step)
    assert step.train["epochs_done"] == 1
    resumed = chain.recovery[1]
    assert resumed.returncode == 0, resumed.output
    assert "Epoch 1/2" not in resumed.output and "Epoch 2/2" in resumed.output
    assert chain.train["params"]["resumed_at_epoch"] == 1
    assert chain.train["steps"] == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["predict"])
def test_predict_completes_after_the_faults(matrix, target):
    chain = matrix[target]
    for outcome in chain.recovery:
        assert outcome.returncode == 0, outcome.output
    out = pd.read_csv(chain.path / "out.csv")
    assert len(out) == 80


@pytest.mark.slow
@pytest.mark.parametrize("target", ["predict"])
def test_predict_killed_while_writing_overlays_keeps_the_previous_ones(matrix, target):
    step = matrix[target].steps["overlay"]
    check_kept(step)


def start_lost_machine(repo, stage="split"):
    """`dvc repro <stage>` in a new session, its process group SIGKILLed during the stage's
    work; returns the Popen, not yet waited for."""
    fired = repo.parent / ".lost-machine-fired"
    fault = PLANS[stage].during or PLANS[stage].middle
    process = subprocess.Popen(in_a_terminal(["dvc", "repro", stage]), cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True,
                               env=environment(repo, fault, STAGE_PROGRAM.format(stage=stage),
                                               fired) | {"CHESTXRAY_FAULT_ACTION": "pause"})
    RUNNING.add(process.pid)
    deadline = time.monotonic() + 300
    while not fired.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fired.exists()
    os.killpg(process.pid, signal.SIGKILL)
    return process


def busy_message(repo, pid):
    return (rf"ERROR: failed to reproduce '\w+': '{re.escape(str(repo))}/[^']+' is busy, it is "
            rf"being blocked by:\n  \(PID {pid}\): \S*dvc repro split\n\n"
            rf"If there are no processes with such PIDs, you can manually remove "
            rf"'{re.escape(str(repo))}/\.dvc/tmp/rwlock' and try again\.")


@pytest.mark.slow
@pytest.mark.parametrize("holder", ["dvc-not-yet-reaped", "pid-reused-after-restart"])
def test_a_lost_dvc_lock_held_by_a_live_pid_refuses_until_the_rwlock_is_removed(
        tiny_repro, tmp_path, holder):
    """DVC 3.67 drops the rwlock entries of a dead dvc by itself (with a warning); it refuses
    while the PID they name is alive: a killed dvc not yet reaped (a zombie), or, after the
    machine restarts, another process that got the same PID. The documented recovery: check
    that no dvc runs in the repository, remove .dvc/tmp/rwlock, run `dvc repro` again."""
    repo = clone_sharing_cache(tiny_repro.path, tmp_path / "repo")
    set_params(repo, PLANS["split"].rerun)
    before = digests(repo)
    lost = start_lost_machine(repo)
    other = None
    try:
        if holder == "dvc-not-yet-reaped":
            pid = lost.pid
        else:
            lost.wait()
            other = subprocess.Popen(["sleep", "600"])
            pid = other.pid
            lock = repo / ".dvc" / "tmp" / "rwlock"
            lock.write_text(lock.read_text().replace(f'"pid": {lost.pid}', f'"pid": {pid}'))
        refused = run_plain(["dvc", "repro", "split"], repo)
        assert refused.returncode != 0
        assert re.search(busy_message(repo, pid), refused.output), refused.output
        assert digests(repo) == before
        (repo / ".dvc" / "tmp" / "rwlock").unlink()
        completed = run_plain(["dvc", "repro", "split"], repo)
        assert completed.returncode == 0, completed.output
        assert "Running stage 'split'" in completed.output
    finally:
        lost.wait()
        RUNNING.discard(lost.pid)
        if other is not None:
            other.kill()
            other.wait()
