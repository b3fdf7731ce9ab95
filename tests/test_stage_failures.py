"""A stage that cannot do its work (bad params, a full disk, a folder it may not write)
prints one line naming the problem, and the previous outputs stay."""
import ctypes
import errno
import os
import re
import shutil
import subprocess
import sys

import pytest

from chestxray.core.errors import PipelineError
from chestxray.core.stage import failure_message

from conftest import REPO, snapshot, stage_process
from faults import in_a_terminal
from repos import set_params

PR_CAPBSET_DROP = 24
# Capabilities that let root ignore file permissions.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def obey_file_permissions():
    """In a child process: make root, too, subject to file permissions after exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def test_bad_params_stop_the_stage_before_any_work(workspace):
    before = snapshot(workspace / "outputs")
    set_params(workspace, {"split.test_fraction": 1.5})
    try:
        result = stage_process("split", workspace)
    finally:
        set_params(workspace, {"split.test_fraction": 0.2})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: params.yaml: split.test_fraction = 1.5 must be a number in (0, 0.9]"]
    assert snapshot(workspace / "outputs") == before


def test_a_class_without_positives_in_a_held_out_split_is_named(workspace):
    # One or two patients in val.
    set_params(workspace, {"split.min_positive_patients": 0, "split.val_fraction": 0.01})
    try:
        result = stage_process("split", workspace, check=True)
    finally:
        set_params(workspace, {"split.min_positive_patients": 1, "split.val_fraction": 0.1})
        stage_process("split", workspace, check=True)
    assert re.search(r"WARNING the val split has no positive patient of \w+.*: AUC is undefined "
                     "there", result.stderr)


def test_folder_without_write_permission_keeps_the_previous_split(workspace):
    outputs = workspace / "outputs"
    before = (outputs / "split.csv").read_bytes()
    set_params(workspace, {"split.seed": 7})  # a run that would write another split
    outputs.chmod(0o555)
    try:
        result = stage_process("split", workspace,
                               preexec_fn=obey_file_permissions if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as error:
        pytest.skip(f"cannot run a process that obeys file permissions here ({error})")
    finally:
        outputs.chmod(0o755)
        set_params(workspace, {"split.seed": 42})
    assert result.returncode == 1
    # The warnings are about the small study's splits.
    assert [line for line in result.stderr.splitlines() if not line.startswith("WARNING ")] == [
        "error: cannot write outputs/split.csv (Permission denied); "
        "outputs/split.csv was left as it was"]
    assert (outputs / "split.csv").read_bytes() == before
    assert sorted(path.name for path in outputs.iterdir()) == ["dataset", "dataset.sha256", "split.csv"]


def tmpfs_mounts_allowed():
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not tmpfs_mounts_allowed(),
                    reason="needs unshare and user/mount namespaces to mount a small tmpfs")
def test_full_disk_during_download_keeps_the_previous_dataset(workspace, tmp_path):
    # outputs/ becomes, inside a private mount namespace, a tmpfs that holds
    # the current outputs with 64 KiB to spare; re-rendering the study at
    # 128 px needs far more. What the stage left is copied out afterwards.
    saved, left = tmp_path / "saved", tmp_path / "left"
    shutil.copytree(workspace / "outputs", saved)
    used = sum(-(-path.stat().st_size // 4096) * 4096 + 4096
               for path in saved.rglob("*"))
    set_params(workspace, {"download.image_size": 128})
    script = (f'mount -t tmpfs -o size={used + 65536} tmpfs outputs && '
              f'cp -a "{saved}/." outputs/ && '
              f'"$0" "{REPO / "stages" / "download.py"}"; status=$?; '
              f'cp -a outputs "{left}"; exit $status')
    try:
        result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount",
                                 "sh", "-c", script, sys.executable],
                                cwd=workspace, capture_output=True, text=True)
    finally:
        set_params(workspace, {"download.image_size": 64})
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: cannot write outputs/dataset (No space left on device); "
        "outputs/dataset was left as it was")
    assert sorted(path.name for path in left.iterdir()) == ["dataset", "dataset.sha256", "split.csv"]
    assert snapshot(left) == snapshot(saved)


def test_unexplained_os_errors_name_the_file_and_the_problem():
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "outputs/stats.json")
    assert failure_message(missing) == "outputs/stats.json: No such file or directory"
    assert failure_message(OSError(errno.ENOSPC, "No space left on device")) == \
        "No space left on device"


def test_ctrl_c_is_one_line_and_exit_130(workspace):
    # SIGINT once the stage works (it writes nothing before its one output).
    script = ("import os, signal, runpy, chestxray.data.split as split\n"
              "real = split.split_patients\n"
              "def interrupted(*args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    return real(*args, **kwargs)\n"
              "split.split_patients = interrupted\n"
              f"runpy.run_path({str(REPO / 'stages' / 'split.py')!r}, run_name='__main__')\n")
    before = snapshot(workspace / "outputs")
    # in_a_terminal: launched as a background job, Python would start with SIGINT ignored.
    result = subprocess.run(in_a_terminal([sys.executable, "-c", script]), cwd=workspace,
                            capture_output=True, text=True)
    assert result.returncode == 130
    assert result.stderr.splitlines()[-1].startswith("error: interrupted; ")
    assert "Traceback" not in result.stderr
    assert snapshot(workspace / "outputs") == before


def test_a_multi_line_message_is_printed_on_one_line():
    error = PipelineError("model.keras: cannot load the model (Keras says:\n  line two\n)")
    assert failure_message(error) == "model.keras: cannot load the model (Keras says: line two )"
