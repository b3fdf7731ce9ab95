"""Benchmark: what DVC's hashing of a `local` source's folder (a dependency of download) costs.

Usage: python benchmarks/local_dir_hashing.py FOLDER
       python benchmarks/local_dir_hashing.py --files N [--png IMAGE]

Times, in a throw-away repository whose one stage depends on FOLDER (as dvc.yaml's download
stage depends on `download.local_dir`): the first `dvc repro` (every file read and hashed),
two `dvc status` after it (hashes remembered by size and modification time), then the first
and second `dvc status` in a `git clone` of that repository (DVC keeps those hashes per clone;
a queued or `--temp` experiment runs in such a copy), and `dvc status` of a stage without the
folder (DVC's start-up). With ``--files N`` the folder is made in a temporary folder: a label
table and N copies of IMAGE (default: the first PNG of ../shared/data/nih-sample-64) spread
over images_NNN/images folders of 10,000 (the Kaggle layout). Prints seconds and the machine.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample-64"
STAGE = "stages:\n  download:\n    cmd: echo ran > out.txt\n{deps}    outs:\n      - out.txt\n"
GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]


def dvc_repository(path, folder):
    """A git and DVC repository at ``path`` whose one stage depends on ``folder`` (or nothing)."""
    path.mkdir()
    deps = f"    deps:\n      - {folder}\n" if folder else ""
    (path / "dvc.yaml").write_text(STAGE.format(deps=deps))
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=path, check=True)
    return path


def seconds(command, cwd):
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def copies(root, count, image):
    """``root`` holding a label table and ``count`` copies of ``image`` (Kaggle layout)."""
    root.mkdir()
    shutil.copy(SAMPLE / "Data_Entry_2017_v2020.csv", root)
    data = Path(image).read_bytes()
    for number in range(count):
        folder = root / f"images_{number // 10_000 + 1:03d}" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:08d}_000.png").write_bytes(data)
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--files", type=int)
    parser.add_argument("--png", default=next(iter(sorted((SAMPLE / "images").glob("*.png"))),
                                              None))
    args = parser.parse_args()
    if (args.folder is None) == (args.files is None):
        parser.error("give FOLDER or --files N")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        folder = args.folder.resolve() if args.folder else copies(scratch / "folder", args.files,
                                                                 args.png)
        files = sum(len(names) for _, _, names in os.walk(folder))
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        print(f"{folder}: {files:,} files, {size / 1e6:,.0f} MB")
        repo = dvc_repository(scratch / "repo", folder)
        print(f"first dvc repro: {seconds(['dvc', 'repro'], repo):.1f} s")
        for _ in range(2):
            print(f"dvc status: {seconds(['dvc', 'status'], repo):.1f} s")
        subprocess.run(GIT + ["add", "-A"], cwd=repo, check=True)
        subprocess.run(GIT + ["commit", "-qm", "ran"], cwd=repo, check=True)
        subprocess.run(["git", "clone", "-q", str(repo), str(scratch / "clone")], check=True)
        for which in ("first", "second"):
            took = seconds(["dvc", "status"], scratch / "clone")
            print(f"clone, {which} dvc status: {took:.1f} s")
        bare = dvc_repository(scratch / "bare", None)
        subprocess.run(["dvc", "repro", "-q"], cwd=bare, check=True)
        print(f"dvc status without the folder (start-up): {seconds(['dvc', 'status'], bare):.1f} s")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB, "
          f"load average {os.getloadavg()[0]:.1f}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
