"""Benchmark: Grad-CAM compiled (one trace) against eager, per backbone and image count.

Usage: python benchmarks/gradcam_speed.py [--size 64] [--batch 32] [--batches 1 2 20]
       [--backbones densenet121 efficientnetv2b0]

For each backbone, in this one process: build the pipeline's model (`build_model`, weights
none) and time `Heatmaps` on ``--batches`` batches of random gray images of
``--batch``, explaining a different class in each image, both compiled (its first call traces
it, so the time includes tracing) and eager. The compiled and eager maps must agree to 1e-5.
Prints seconds and heatmaps/s, and the machine.
"""
import argparse
import os
import platform
import time

import numpy as np

from chestxray.explain.gradcam import Heatmaps
from chestxray.model.network import build_model
from chestxray.model.training import configure_tensorflow


def seconds_for(heatmaps, batches):
    """(seconds, maps) of ``heatmaps`` over ``batches`` (images, classes) in turn."""
    start = time.perf_counter()
    maps = [heatmaps(images, classes) for images, classes in batches]
    return time.perf_counter() - start, np.concatenate(maps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 20])
    parser.add_argument("--backbones", nargs="+", default=["densenet121", "efficientnetv2b0"])
    args = parser.parse_args()
    configure_tensorflow()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; {args.size} px, "
          f"batches of {args.batch}\n")
    print("| backbone | batches | compiled, traced (s) | eager (s) | eager / compiled | "
          "compiled heatmaps/s |\n| --- | --- | --- | --- | --- | --- |")
    for backbone in args.backbones:
        model = build_model(args.size, backbone=backbone)
        for count in args.batches:
            batches = [(rng.normal(size=(args.batch, args.size, args.size, 1)).astype("float32"),
                        rng.integers(0, 14, args.batch).astype("int32")) for _ in range(count)]
            # A new function each time, so that every compiled figure includes its one trace.
            compiled, compiled_maps = seconds_for(Heatmaps(model), batches)
            eager, eager_maps = seconds_for(Heatmaps(model, compiled=False), batches)
            np.testing.assert_allclose(compiled_maps, eager_maps, atol=1e-5)
            print(f"| {backbone} | {count} | {compiled:.1f} | {eager:.1f} | "
                  f"{eager / compiled:.2f} | {count * args.batch / compiled:.0f} |")


if __name__ == "__main__":
    main()
