"""Benchmark: images/s of the tf.data pipeline vs the seeds' Keras 2 ImageDataGenerator.

Usage: python benchmarks/input_pipeline.py [image folder] [--limit N] [--size PX] [--epochs E]
Default folder: outputs/dataset/images (the embedded study's PNGs). Needs
``pip install -r benchmarks/requirements.txt`` (tf-keras: Keras 3 has no
ImageDataGenerator). Both sides yield shuffled float32 batches of 32 gray
images at 320x320 (as the seeds), samplewise-normalised and randomly flipped;
the seeds' generator decodes and resizes every image every epoch, this
pipeline once. Target: cached epochs >= 5x the generator.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from chestxray.data.dataset import image_dataset
from chestxray.data.preprocessing import Preprocessing
from chestxray.model.network import augmentation

BATCH = 32


def images_per_second(batches, count):
    """Time one pass over ``batches`` (an iterable of (images, labels)); returns images/s."""
    start = time.perf_counter()
    seen = 0
    for images, _ in batches:
        seen += len(images)
        if seen >= count:
            break
    return seen / (time.perf_counter() - start)


def seeds_generator(paths, labels, size):
    """The seeds' ImageDataGenerator.flow_from_dataframe, one epoch's worth per iteration."""
    from tf_keras.preprocessing.image import ImageDataGenerator

    frame = pd.DataFrame(labels, columns=[f"y{i}" for i in range(labels.shape[1])])
    frame.insert(0, "path", paths)
    generator = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True,
                                   horizontal_flip=True)
    return generator.flow_from_dataframe(frame, x_col="path", y_col=list(frame.columns[1:]),
                                         class_mode="raw", target_size=(size, size),
                                         color_mode="grayscale", batch_size=BATCH, shuffle=True,
                                         seed=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="outputs/dataset/images")
    parser.add_argument("--limit", type=int, default=2000, help="images per epoch")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(str(path) for path in Path(args.folder).glob("*.png"))[:args.limit]
    labels = np.zeros((len(paths), 14), dtype=np.float32)
    print(f"{len(paths)} PNGs from {args.folder} -> {args.size}x{args.size}, batch {BATCH}, "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'all'} threads")

    seeds = seeds_generator(paths, labels, args.size)
    baseline = images_per_second(seeds, len(paths))
    print(f"seeds ImageDataGenerator.flow_from_dataframe: {baseline:8.0f} images/s")

    # In training the flip runs on the accelerator inside the model; the
    # second variant maps it onto the batches, so the CPU does all the seeds' work.
    flip = augmentation(True, 0.0, 0.0, 0.0, seed=0)
    for variant in ("flip in the model", "flip in the pipeline"):
        pipeline = image_dataset(paths, labels, Preprocessing(args.size, "samplewise"), BATCH,
                                 shuffle=True, seed=0)
        if variant == "flip in the pipeline":
            pipeline = pipeline.map(lambda images, y: (flip(images, training=True), y),
                                    num_parallel_calls=tf.data.AUTOTUNE)
        for epoch in range(1, args.epochs + 1):
            rate = images_per_second(pipeline, len(paths))
            kind = "decode + fill cache" if epoch == 1 else "from cache"
            print(f"tf.data, {variant}, epoch {epoch} ({kind}): {rate:6.0f} images/s = "
                  f"{rate / baseline:4.1f}x")

if __name__ == "__main__":
    main()
