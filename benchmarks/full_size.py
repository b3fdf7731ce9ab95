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

Prints Markdown: each step's wall time and peak RSS, then the disk size of each stage's outputs,
the DVC cache and the remote. Peak RSS is the ``ru_maxrss`` that ``os.wait4`` returns for the
step's process: the largest resident set reached by any one process of its tree that was waited
for (DVC, the stage's Python, a render worker), not the sum of the processes that ran at once.
The log of every command is ``<workdir>/benchmark.log``.
"""
import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "presets" / "synthetic-full.yaml"
OFFICIAL_PATIENTS = 30_805
# Left out of the copy: the default run's record, so every stage runs as for the first time.
LEFT_OUT = ("dvc.lock", "metrics/")
GIT = ["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost"]


def run(command, cwd, log):
    """Run ``command`` in ``cwd``, its output appended to the file ``log``; returns
    ``(seconds, peak RSS in MiB, output)``.

    The stages import ``cwd``'s own ``src`` (PYTHONPATH), not an installed package, and find
    this interpreter's tools (dvc) first on the PATH. A failure stops the benchmark with one
    line naming the command and the log.
    """
    env = dict(os.environ, PYTHONPATH=str(Path(cwd) / "src"),
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


def copy_working_tree(destination):
    """Copy this working tree's tracked and untracked, not ignored, files into ``destination``,
    as a clone of it would hold them, less :data:`LEFT_OUT`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = ROOT / name
        if name.startswith(LEFT_OUT) or not source.is_file():  # deleted, not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def set_params(repo, overrides):
    """Write ``{section: {key: value}}`` into ``repo``'s params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


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
    set_params(repo, preset)
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
        timed(f"{name}: `{stage['cmd']}`", shlex.split(stage["cmd"]))
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
        print(f"| {step} | {duration(seconds)} | {peak:,.0f} MiB |")
    print("\n| what | files | size |\n| --- | --- | --- |")
    disk = [(f"{name}: its outs, metrics and plots", [repo / path for path in stage_outputs(stage)])
            for name, stage in stages.items()]
    disk += [("the study's tables, `data/`", [repo / "data"]),
             ("the DVC cache, `.dvc/cache`", [repo / ".dvc" / "cache"]),
             ("the embedded remote (with the default study's tables)",
              [repo / ".dvc" / "embedded-remote"]),
             ("the local remote", [remote]),
             ("the fresh clone's DVC cache", [clone / ".dvc" / "cache"])]
    for what, paths in disk:
        usage = [disk_usage(path) for path in paths]
        print(f"| {what} | {sum(files for files, _ in usage):,} | "
              f"{size(sum(total for _, total in usage))} |")
    if args.keep:
        print(f"\nkept {workdir}")
    elif args.workdir is None:
        shutil.rmtree(workdir)
    else:  # a folder of the user's: only what this run made in it, the log kept
        for folder in (repo, remote, clone):
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
