"""Benchmark: the whole pipeline on a synthetic study of ChestX-ray14's size, stage by stage.

Usage: python benchmarks/full_size.py [--patients 30805] [--train-steps N] [--workdir DIR] [--keep]

In a scratch git + DVC repository holding this working tree (its tracked files and its
untracked, not ignored ones; not dvc.lock nor metrics/, so every stage runs for the first time):

1. applies ``presets/synthetic-full.yaml``, with ``train.steps_per_epoch`` = ``--train-steps``
   (default: the preset's) so that training on a few CPU cores takes minutes;
2. generates a study of ``--patients`` patients into ``data/``, ``dvc add data`` and pushes it
   to the embedded remote, as docs/real-data.md replaces the study;
3. runs each stage of dvc.yaml in order: its command, then ``dvc commit`` of the stage, which
   hashes its outputs and copies them into the DVC cache. The two together are what ``dvc repro``
   of the stage does, timed apart;
4. DVC's own operations: ``dvc repro`` with nothing to run, ``dvc status``, ``dvc push`` of
   everything to a local remote, and ``dvc pull`` in a fresh ``git clone``.

Prints Markdown: each step's wall time and peak RSS (evaluate's log splits its time into the
prediction and the rest), then the disk size of each stage's outputs, the DVC cache and the
remote, with a column computed for 1024-px images: the download stage renders the generator's
first 60 patients at 1024 px, and each row holding every image of the study grows by the
difference in mean PNG size. Peak RSS is the ``ru_maxrss`` that ``os.wait4`` returns for the
step's process: the largest resident set reached by any one process of its tree that was waited
for (DVC, the stage's Python, a render worker), not the sum of the processes that ran at once.
The log of every command is ``<workdir>/benchmark.log``.
"""
import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from scratch_repo import copy_working_tree, set_params

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "presets" / "synthetic-full.yaml"
# The disk table's second column: a rendering at the release's resolution, of this many patients.
LARGE_SIZE = 1024
SAMPLE_PATIENTS = 60
OFFICIAL_PATIENTS = 30_805
GIT = ["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost"]


def run(command, cwd, log, code=None):
    """Run ``command`` in ``cwd``, its output appended to the file ``log``; returns
    ``(seconds, peak RSS in MiB, output)``.

    The stages import ``cwd``'s (or ``code``'s) own ``src`` (PYTHONPATH), not an installed
    package, and find this interpreter's tools (dvc) first on the PATH. A failure stops the
    benchmark with one line naming the command and the log.
    """
    env = dict(os.environ, PYTHONPATH=str(Path(code or cwd) / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with open(log, "a") as handle, tempfile.TemporaryFile("w+") as output:
        handle.write(f"\n$ (cd {cwd} && {shlex.join(command)})\n")
        handle.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
        # wait4, not wait: the rusage of this child and its waited-for descendants only.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
        handle.write(text)
    if process.returncode:
        sys.exit(f"error: {shlex.join(command)} exited {process.returncode} in {cwd}; see {log}")
    return seconds, usage.ru_maxrss / 1024, text


def mean_image_bytes(image_size, repo, log):
    """Mean PNG size, in bytes, of ``repo``'s download stage rendering at ``image_size`` px a
    study of the generator's first :data:`SAMPLE_PATIENTS` patients (in a folder beside it)."""
    scratch = repo.parent / f"render-{image_size}"
    scratch.mkdir()
    shutil.copy(repo / "params.yaml", scratch)
    set_params(scratch, {"download.image_size": image_size})
    run([sys.executable, "-m", "chestxray.acquire.embedded", "--out", "data", "--patients",
         str(SAMPLE_PATIENTS)], scratch, log, code=repo)
    run([sys.executable, str(repo / "stages" / "download.py")], scratch, log, code=repo)
    count, total = disk_usage(scratch / "outputs" / "dataset" / "images")
    shutil.rmtree(scratch)
    return total / count


def parts_logged(stage, output):
    """``(step, seconds, None)`` for the parts of a stage that it times itself in its log."""
    if stage == "evaluate":
        found = re.search(r"predicted (\d+) val and (\d+) test images in ([\d.]+) s; (.+) in "
                          r"([\d.]+) s", output)
        if found:
            val, test, predicting, rest, rest_seconds = found.groups()
            return [(f"evaluate, of which: prediction of {int(val):,} val and {int(test):,} "
                     "test images", float(predicting), None),
                     (f"evaluate, of which: {rest}", float(rest_seconds), None)]
    return []


def stage_outputs(stage):
    """Paths of a dvc.yaml stage's outs, metrics and plots."""
    return [next(iter(entry)) if isinstance(entry, dict) else entry
            for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, [])]


def disk_usage(path):
    """``(files, bytes)`` under ``path`` (a file or a folder), apparent sizes."""
    path = Path(path)
    if path.is_file():
        return 1, path.stat().st_size
    sizes = [item.stat().st_size for item in path.rglob("*") if item.is_file()]
    return len(sizes), sum(sizes)


def duration(seconds):
    """``seconds`` as "12.3 s" or "4 min 56 s"."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def size(count):
    """``count`` bytes in KiB below a MiB, else in MiB."""
    return f"{count / 2**10:,.1f} KiB" if count < 2**20 else f"{count / 2**20:,.1f} MiB"


def machine():
    """One line: cores, memory, Python, system."""
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    return (f"{os.cpu_count()} CPU cores, {total_kib / 2**20:.0f} GiB memory, Python "
            f"{platform.python_version()}, {platform.system()} {platform.machine()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=OFFICIAL_PATIENTS,
                        help=f"patients in the study (default: ChestX-ray14's {OFFICIAL_PATIENTS})")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="train.steps_per_epoch (default: the preset's); 0 = whole epochs")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the scratch repositories go (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch repositories (always kept after a failure)")
    args = parser.parse_args()
    if args.patients < 1 or (args.train_steps is not None and args.train_steps < 0):
        parser.error("--patients must be at least 1 and --train-steps at least 0")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="full-size-"))
    repo, remote, clone = workdir / "repo", workdir / "remote", workdir / "clone"
    if repo.exists() or clone.exists() or remote.exists():
        sys.exit(f"error: {workdir} already holds repo/, remote/ or clone/; give another "
                 "--workdir")
    repo.mkdir(parents=True)
    log = workdir / "benchmark.log"
    steps = []  # (step, seconds, peak MiB)

    def untimed(command, cwd=repo):
        return run(command, cwd, log)[2]

    def timed(step, command, cwd=repo):
        seconds, peak, output = run(command, cwd, log)
        steps.append((step, seconds, peak))
        return output

    copy_working_tree(repo)
    preset = yaml.safe_load(PRESET.read_text())
    if args.train_steps is not None:
        preset["train"]["steps_per_epoch"] = args.train_steps
    set_params(repo, {f"{section}.{key}": value for section, values in preset.items()
                      for key, value in values.items()})
    untimed(["git", "init", "-q"])
    untimed(GIT + ["add", "-A"])
    untimed(GIT + ["commit", "-qm", "working tree, presets/synthetic-full.yaml"])

    generate = [sys.executable, "-m", "chestxray.acquire.embedded", "--out", "data",
                "--patients", str(args.patients)]
    print(timed("generate the study's tables", generate).strip().splitlines()[-1])
    timed("`dvc add data`", ["dvc", "add", "-q", "data"])
    untimed(["dvc", "push", "-q", "-r", "embedded", "data.dvc"])
    untimed(GIT + ["add", "-A"])
    untimed(GIT + ["commit", "-qm", f"a synthetic study of {args.patients} patients"])

    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        output = timed(f"{name}: `{stage['cmd']}`", shlex.split(stage["cmd"]))
        steps.extend(parts_logged(name, output))
        timed(f"{name}: `dvc commit` (hash and cache its outputs)",
              ["dvc", "commit", "-q", "-f", name])
    if "Running stage" in timed("`dvc repro`, nothing to run", ["dvc", "repro"]):
        sys.exit(f"error: `dvc repro` reran a stage after `dvc commit`; see {log}")
    timed("`dvc status`", ["dvc", "status"])
    untimed(GIT + ["add", "-A"])
    untimed(GIT + ["commit", "-qm", "reproduced"])
    untimed(["dvc", "remote", "add", "-d", "scratch", str(remote)])
    untimed(GIT + ["commit", "-qam", "a local remote"])
    timed("`dvc push` to a local remote", ["dvc", "push"])
    untimed(["git", "clone", "-q", str(repo), str(clone)], workdir)
    timed("`dvc pull` in a fresh clone", ["dvc", "pull"], clone)
    if "up to date" not in untimed(["dvc", "status"], clone):
        sys.exit(f"error: the clone's `dvc status` is not up to date after `dvc pull`; see "
                 f"{log}")

    train_params = yaml.safe_load((repo / "params.yaml").read_text())["train"]
    print(f"\n{args.patients} patients, train.steps_per_epoch {train_params['steps_per_epoch']}, "
          f"train.epochs {train_params['epochs']}; {machine()}\n")
    print("| step | wall time | peak RSS |\n| --- | --- | --- |")
    for step, seconds, peak in steps:
        memory = "(in the stage's)" if peak is None else f"{peak:,.0f} MiB"
        print(f"| {step} | {duration(seconds)} | {memory} |")
    images, image_bytes = disk_usage(repo / "outputs" / "dataset" / "images")
    large = mean_image_bytes(LARGE_SIZE, repo, log)
    print(f"\nA {LARGE_SIZE}-px column computed: a {LARGE_SIZE}-px rendering of the generator's "
          f"first {SAMPLE_PATIENTS} patients averages {large / 2**10:,.1f} KiB an image, "
          f"against {image_bytes / images / 2**10:,.1f} KiB here; rows that hold every image "
          f"of the study add the difference {images:,} times.\n")
    print(f"| what | files | size | at {LARGE_SIZE} px (computed) |\n| --- | --- | --- | --- |")
    disk = [(f"{name}: its outs, metrics and plots", [repo / path for path in stage_outputs(stage)],
             name == "download") for name, stage in stages.items()]
    disk += [("the study's tables, `data/`", [repo / "data"], False),
             ("the DVC cache, `.dvc/cache`", [repo / ".dvc" / "cache"], True),
             ("the embedded remote (with the default study's tables)",
              [repo / ".dvc" / "embedded-remote"], False),
             ("the local remote", [remote], True),
             ("the fresh clone's DVC cache", [clone / ".dvc" / "cache"], True)]
    for what, paths, holds_images in disk:
        usage = [disk_usage(path) for path in paths]
        total = sum(count for _, count in usage)
        scaled = total + images * (large - image_bytes / images) if holds_images else total
        print(f"| {what} | {sum(files for files, _ in usage):,} | {size(total)} | "
              f"{size(scaled)} |")
    if args.keep:
        print(f"\nkept {workdir}")
    elif args.workdir is None:
        shutil.rmtree(workdir)
    else:  # a folder of the user's: only what this run made in it, the log kept
        for folder in (repo, remote, clone):
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
