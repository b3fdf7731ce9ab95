"""Benchmark: does `train.deterministic: true` give the same weights when the CPU changes?

Usage: python benchmarks/cpu_determinism.py [--repo DIR] [--epochs E] [--rounds R]

One machine cannot switch CPUs, but it can change what the libraries dispatch to:
oneDNN's instruction set (ONEDNN_MAX_CPU_ISA), TensorFlow's oneDNN graph rewrites
(TF_ENABLE_ONEDNN_OPTS) and the number of cores TensorFlow sees (taskset). Each
configuration runs the real train stage (`python stages/train.py`, params.yaml with
`train.epochs` set to E) in a scratch copy of DIR (default: this checkout, whose
outputs/dataset, split.csv and stats.json must exist). Configurations are interleaved
within each round, so machine drift hits all alike; each run's time is reported as a
ratio to the default configuration's run of the same round. The weights' SHA-256 says
which configurations train identical models.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "default (oneDNN, all ISAs, every core)"
CONFIGURATIONS = {
    DEFAULT: {},
    "oneDNN capped at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN capped at SSE4.1": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "one core": {"taskset": "0"},
    "oneDNN rewrites off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "oneDNN rewrites off, AVX2": {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN rewrites off, one core": {"TF_ENABLE_ONEDNN_OPTS": "0", "taskset": "0"},
}
LINKED_OUTPUTS = ("outputs/dataset", "outputs/split.csv", "outputs/stats.json")


def scratch_copy(repo, epochs, into):
    """A copy of ``repo``'s code and params (train.epochs = ``epochs``) under ``into``,
    with the inputs of train linked, not copied."""
    for name in ("stages", "src", "params.yaml"):
        source = repo / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, into / name)
    params = yaml.safe_load((into / "params.yaml").read_text())
    params["train"]["epochs"] = epochs
    (into / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (into / "outputs").mkdir()
    for name in LINKED_OUTPUTS:
        (into / name).symlink_to(repo / name)


def train_once(repo, epochs, settings):
    """Run the train stage under ``settings``; return (seconds, weights digest)."""
    with tempfile.TemporaryDirectory(prefix="determinism-") as scratch:
        scratch = Path(scratch)
        scratch_copy(repo, epochs, scratch)
        environment = {**os.environ, "PYTHONPATH": str(scratch / "src"),
                       **{key: value for key, value in settings.items() if key != "taskset"}}
        command = [sys.executable, "stages/train.py"]
        if "taskset" in settings:
            command = ["taskset", "-c", settings["taskset"], *command]
        start = time.perf_counter()
        finished = subprocess.run(command, cwd=scratch, env=environment, capture_output=True,
                                  text=True)
        seconds = time.perf_counter() - start
        if finished.returncode:
            sys.exit(f"train failed under {settings}:\n{finished.stdout}{finished.stderr}")
        return seconds, weights_digest(scratch / "outputs" / "model.keras")


def weights_digest(model_file):
    """SHA-256 of every weight array of a saved model, in order (file bytes carry dates)."""
    digest = subprocess.run(
        [sys.executable, "-c",
         "import hashlib, sys, keras\n"
         "model = keras.saving.load_model(sys.argv[1], compile=False)\n"
         "h = hashlib.sha256()\n"
         "[h.update(w.tobytes()) for w in model.get_weights()]\n"
         "print(h.hexdigest())", str(model_file)],
        capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return digest.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    names = list(CONFIGURATIONS)
    seconds = {name: [] for name in names}
    ratios = {name: [] for name in names}
    digests = {name: set() for name in names}
    for round_number in range(args.rounds):
        # Rotate the order so no configuration always runs first (cold caches) or last.
        order = names[round_number % len(names):] + names[:round_number % len(names)]
        timings = {}
        for name in order:
            timings[name], digest = train_once(args.repo, args.epochs, CONFIGURATIONS[name])
            digests[name].add(digest)
            print(f"round {round_number + 1}: {name}: {timings[name]:.1f} s, {digest[:12]}",
                  flush=True)
        for name in names:
            seconds[name].append(timings[name])
            ratios[name].append(timings[name] / timings[DEFAULT])
    reference = digests[DEFAULT]
    print(f"\n{'configuration':<40} {'median s':>9} {'time / default':>16}  weights")
    for name in names:
        spread = f"{min(ratios[name]):.2f}-{max(ratios[name]):.2f}"
        verdict = ("differ between its own runs" if len(digests[name]) > 1 else
                   "= default" if digests[name] == reference else "differ from default")
        print(f"{name:<40} {statistics.median(seconds[name]):>9.1f} {spread:>16}  "
              f"{verdict} ({', '.join(sorted(d[:12] for d in digests[name]))})")


if __name__ == "__main__":
    main()
