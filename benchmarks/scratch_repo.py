"""Scratch copies of this working tree, for the tests and benchmarks that run `dvc` itself."""
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Left out: the default run's record, so that every stage of a copy runs as for the first time.
LEFT_OUT = ("dvc.lock", "metrics/")


def copy_working_tree(destination):
    """Copy this working tree's tracked and untracked, not ignored, files into ``destination``,
    as a clone of it would hold them, less :data:`LEFT_OUT`; returns ``destination``.

    Ignored files (the DVC cache, outputs/, .venv/) stay behind.
    """
    destination = Path(destination)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = ROOT / name
        if name.startswith(LEFT_OUT) or not source.is_file():  # deleted, not yet committed
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def set_params(repo, overrides):
    """Write ``{"section.key": value}`` into ``repo``'s params.yaml."""
    path = Path(repo) / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
