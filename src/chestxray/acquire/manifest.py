"""The dataset folder's manifest: one SHA-256 per file, the dependency of every later stage.

DVC checks a folder dependency by looking at each of its files, for every stage that lists
it: at ChestX-ray14's 112,120 images, five stages made a no-op `dvc status` take 23 s
(docs/benchmarks.md#full-size-rehearsal). The download stage writes this one file beside the
folder, in the same run, and the later stages depend on it instead: any change of the
folder's contents changes the manifest, so what reads the images still reruns.
"""
import hashlib
from pathlib import Path

from chestxray.core.atomic import atomic_write


def folder_digests(folder):
    """``"<SHA-256>  <path under folder>"`` lines (sha256sum's format, so ``sha256sum -c``
    checks them from inside ``folder``), one per file under ``folder``, sorted by path."""
    folder = Path(folder)
    paths = sorted(path for path in folder.rglob("*") if path.is_file())
    return "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  "
                   f"{path.relative_to(folder).as_posix()}\n" for path in paths)


def write_manifest(folder, manifest):
    """Write :func:`folder_digests` of ``folder`` into the file ``manifest``, atomically."""
    with atomic_write(manifest, "w") as handle:
        handle.write(folder_digests(folder))
