"""Benchmark: training images/s through the tf.data pipeline vs NumPy arrays in memory.

Usage: python benchmarks/training_throughput.py [image folder] [--images N] [--size PX] [--epochs E]
Default folder: outputs/dataset/images. Trains DenseNet121 (weights none) on
the same N images both ways with one model, so the first step is traced only
once (the warm-up epoch, which also fills the pipeline's cache). Reports
images/s of each and the process' peak resident memory. Target: pipeline
>= 90% of the NumPy rate.
"""
import argparse
import resource
import time
from pathlib import Path

import numpy as np

from chestxray.data.dataset import image_dataset
from chestxray.data.preprocessing import Preprocessing
from chestxray.model.network import build_model
from chestxray.model.training import compile_model, configure_tensorflow
from chestxray.nih.labels import FINDINGS

BATCH = 32


def peak_memory_mib():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_fit(model, count, *args, **kwargs):
    """Images/s of one ``model.fit`` epoch over ``count`` images."""
    start = time.perf_counter()
    model.fit(*args, epochs=1, verbose=0, **kwargs)
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="outputs/dataset/images")
    parser.add_argument("--images", type=int, default=256, help="a multiple of 32")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per side")
    args = parser.parse_args()
    paths = sorted(str(path) for path in Path(args.folder).glob("*.png"))[:args.images]
    labels = (np.random.default_rng(0).random((len(paths), len(FINDINGS))) < 0.2
              ).astype(np.float32)
    device = configure_tensorflow()
    preprocessing = Preprocessing(args.size, "featurewise", 128.0, 64.0)
    pipeline = image_dataset(paths, labels, preprocessing, BATCH, shuffle=True, seed=0)
    arrays = np.concatenate([images.numpy() for images, _ in
                             image_dataset(paths, labels, preprocessing, BATCH)])
    half = {name: 0.5 for name in FINDINGS}
    model = compile_model(build_model(args.size, "none", 0.9), {"pos_weights": half,
                                                                "neg_weights": half}, 1e-3, device)
    print(f"{len(paths)} images at {args.size} px, batch {BATCH}, {device}; peak memory after "
          f"loading {peak_memory_mib():.0f} MiB")

    start = time.perf_counter()
    model.fit(pipeline, epochs=1, verbose=0)
    print(f"warm-up epoch (trace + fill cache): {time.perf_counter() - start:.0f} s")
    rates = {"numpy": [], "pipeline": []}
    for _ in range(args.epochs):
        rates["numpy"].append(timed_fit(model, len(paths), arrays, labels, batch_size=BATCH,
                                        shuffle=True))
        rates["pipeline"].append(timed_fit(model, len(paths), pipeline))
    numpy_rate, pipeline_rate = max(rates["numpy"]), max(rates["pipeline"])
    print(f"model.fit on NumPy arrays: {numpy_rate:6.1f} images/s "
          f"(epochs: {', '.join(f'{r:.1f}' for r in rates['numpy'])})")
    print(f"model.fit on tf.data:      {pipeline_rate:6.1f} images/s "
          f"(epochs: {', '.join(f'{r:.1f}' for r in rates['pipeline'])}) = "
          f"{100 * pipeline_rate / numpy_rate:.0f}% of NumPy")
    print(f"peak memory: {peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
