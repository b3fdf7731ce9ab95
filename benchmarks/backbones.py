"""Benchmark: each registry backbone's cost to start training, and whether a short run from
scratch can tell images apart.

Usage: python benchmarks/backbones.py [--size 32] [--images 32] [--batch 16]
       [--batchnorm-momentum 0.9] [--backbones densenet121 ...]

For each backbone, in this one process: build the pipeline's model (`build_model`, weights
none, train.batchnorm_momentum `--batchnorm-momentum`), compile it with Adam and binary cross-entropy, and fit
one epoch of random gray images in batches of `--batch`.
Prints the build time, the first epoch (tracing included), a second epoch and the training
images/s it gives (with `--images` large enough for many steps, the backbone's steady
training speed on this machine: no decoding, no validation), and the sd across images of the
scores after those two epochs in inference mode (about 0: every image gets the same scores).
See benchmarks/training_throughput.py for the input pipeline's share of a real run.
"""
import argparse
import time

import keras
import numpy as np

from chestxray.model.backbones import BACKBONES
from chestxray.model.network import build_model
from chestxray.model.training import configure_tensorflow


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batchnorm-momentum", type=float, default=0.9)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    args = parser.parse_args()
    configure_tensorflow()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.images, args.size, args.size, 1)).astype(np.float32)
    labels = (rng.random((args.images, 14)) > 0.8).astype(np.float32)
    print("| backbone | build (s) | first epoch, traced (s) | second epoch (s) | "
          "training images/s | score sd across images |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.backbones:
        keras.utils.set_random_seed(0)
        start = time.perf_counter()
        model = build_model(args.size, "none", args.batchnorm_momentum, backbone=name)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                      jit_compile=False)
        built = time.perf_counter()
        model.fit(images, labels, batch_size=args.batch, epochs=1, verbose=0)
        first = time.perf_counter()
        model.fit(images, labels, batch_size=args.batch, epochs=1, verbose=0)
        second = time.perf_counter()
        spread = np.asarray(model.predict(images, verbose=0)).std(axis=0).mean()
        print(f"| {name} | {built - start:.1f} | {first - built:.1f} | {second - first:.1f} | "
              f"{args.images / (second - first):.0f} | {spread:.1e} |")


if __name__ == "__main__":
    main()
