"""Benchmark: DVC on one file per image against the same images packed into shards.

Usage: python benchmarks/storage_layout.py IMAGES [--shard-size 1000] [--workdir DIR]

IMAGES is a folder of PNGs, for example the full-size rehearsal's
outputs/dataset/images (`python benchmarks/full_size.py --keep`). Each layout gets its own git
+ DVC repository and local remote:

* ``per-file``: the folder as the download stage writes it, one DVC-tracked file per image;
* ``shards``: the same files, in name order, packed into uncompressed tar files of
  ``--shard-size`` images (what a sharded download stage would write; a tar member keeps the
  image's name, so predict and Grad-CAM could still name it).

Times, per layout: making it (copy or pack), `dvc add` (hash and cache), `dvc status` with
nothing changed, one image replaced (for shards, its shard rewritten) then `dvc status` and
`dvc add`, `dvc push` to the local remote, `dvc pull` in a fresh `git clone`, and reading
every image's bytes back (page cache warm). Prints Markdown and the machine.
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

GIT = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]


def timed(rows, what, function, *arguments):
    start = time.perf_counter()
    result = function(*arguments)
    rows.setdefault(what, []).append(time.perf_counter() - start)
    return result


def shell(command, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=env)


def copy_images(images, folder):
    folder.mkdir()
    for image in images:
        shutil.copyfile(image, folder / image.name)


def pack_shards(images, folder, shard_size):
    folder.mkdir()
    for number, start in enumerate(range(0, len(images), shard_size)):
        with tarfile.open(folder / f"shard-{number:05d}.tar", "w") as shard:
            for image in images[start:start + shard_size]:
                shard.add(image, arcname=image.name)


def read_files(folder):
    return sum(len(path.read_bytes()) for path in sorted(folder.iterdir()))


def read_shards(folder):
    total = 0
    for path in sorted(folder.iterdir()):
        with tarfile.open(path) as shard:
            for member in shard:
                total += len(shard.extractfile(member).read())
    return total


def replace_one(layout, folder, images, shard_size, replacement):
    """Put ``replacement``'s bytes in place of the middle image."""
    middle = len(images) // 2
    if layout == "per-file":
        shutil.copyfile(replacement, folder / images[middle].name)
        return
    number = middle // shard_size
    members = images[number * shard_size:(number + 1) * shard_size]
    with tarfile.open(folder / f"shard-{number:05d}.tar", "w") as shard:
        for image in members:
            source = replacement if image == images[middle] else image
            shard.add(source, arcname=image.name)


def measure(layout, images, root, shard_size):
    """{step: seconds} for one layout in a repository under ``root``."""
    rows = {}
    repo, remote, clone = root / layout, root / f"{layout}-remote", root / f"{layout}-clone"
    repo.mkdir()
    shell(["git", "init", "-q"], repo)
    shell(["dvc", "init", "-q"], repo)
    shell(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    folder = repo / "images"
    if layout == "per-file":
        timed(rows, "make the layout (copy; pack)", copy_images, images, folder)
    else:
        timed(rows, "make the layout (copy; pack)", pack_shards, images, folder, shard_size)
    timed(rows, "`dvc add` (hash and cache)", shell, ["dvc", "add", "-q", "images"], repo)
    shell(GIT + ["add", "-A"], repo)
    shell(GIT + ["commit", "-qm", layout], repo)
    for _ in range(2):
        timed(rows, "`dvc status`, nothing changed", shell, ["dvc", "status"], repo)
    timed(rows, "replace one image", replace_one, layout, folder, images, shard_size, images[0])
    timed(rows, "`dvc status`, one image changed", shell, ["dvc", "status"], repo)
    timed(rows, "`dvc add` again", shell, ["dvc", "add", "-q", "images"], repo)
    shell(GIT + ["commit", "-qam", "one image replaced"], repo)
    timed(rows, "`dvc push` to a local remote", shell, ["dvc", "push", "-q"], repo)
    shell(["git", "clone", "-q", str(repo), str(clone)], root)
    timed(rows, "`dvc pull` in a fresh clone", shell, ["dvc", "pull", "-q"], clone)
    reader = read_files if layout == "per-file" else read_shards
    timed(rows, "read every image's bytes", reader, clone / "images")
    files = sum(1 for _ in folder.iterdir())
    return rows, files, sum(path.stat().st_size for path in folder.iterdir())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="a folder of PNG images")
    parser.add_argument("--shard-size", type=int, default=1000, help="images a shard")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the repositories go (default: a new temp folder, removed)")
    args = parser.parse_args()
    images = sorted(args.images.glob("*.png"))
    if not images or args.shard_size < 1:
        parser.error(f"{args.images} holds no PNG, or --shard-size is below 1")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="storage-layout-"))
    root.mkdir(parents=True, exist_ok=True)
    results = {layout: measure(layout, images, root, args.shard_size)
               for layout in ("per-file", "shards")}
    print(f"{len(images):,} images of {args.images}, shards of {args.shard_size}; "
          f"{os.cpu_count()} CPU cores, Python {platform.python_version()}\n")
    print("| step | one file per image | shards | shards / per-file |\n| --- | --- | --- | --- |")
    for step, per_file in results["per-file"][0].items():
        shards = results["shards"][0][step]
        print(f"| {step} | {', '.join(f'{s:.1f} s' for s in per_file)} | "
              f"{', '.join(f'{s:.1f} s' for s in shards)} | {sum(shards) / sum(per_file):.2f} |")
    for layout, (_, files, size) in results.items():
        print(f"\n{layout}: {files:,} files, {size / 2**20:,.1f} MiB")
    if args.workdir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
