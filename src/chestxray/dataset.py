"""tf.data input pipeline: decode and resize once, cache, normalise, augment."""
import keras
import tensorflow as tf

# decode_png with uint16 reads 8-bit, 16-bit, gray and RGB(A) PNGs alike on a
# 0..65535 scale; dividing by 257 maps every flavour onto 0..255.
UINT16_TO_UINT8 = 257.0


def decode_gray(path, image_size):
    """Read one PNG as float32 gray of shape (image_size, image_size, 1), 0..255."""
    pixels = tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=tf.uint16)
    pixels = tf.cast(pixels, tf.float32) / UINT16_TO_UINT8
    return tf.image.resize(pixels, (image_size, image_size), antialias=True)


def augmentation(flip, rotation, zoom, contrast, seed):
    """Keras preprocessing layers applied on-device during training, or None if all off."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode="nearest", seed=seed))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode="nearest", seed=seed))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, seed=seed))
    return keras.Sequential(layers, name="augmentation") if layers else None


def image_dataset(paths, labels, image_size, batch_size, mean, std, *,
                  shuffle=False, seed=0, augment=None, cache=""):
    """Batches of normalised images and labels.

    Parameters
    ----------
    paths : sequence of str, n image files.
    labels : float32 array of shape (n, 14).
    mean, std : floats, training-split pixel statistics (0..255 scale).
    shuffle : reshuffle every epoch (training).
    augment : Keras layer from :func:`augmentation`, or None.
    cache : "" caches decoded images in memory; a path caches them on disk, so
        later epochs and runs decode no PNG.

    Yields ``(images, labels)``: float32 (batch, image_size, image_size, 1) and
    float32 (batch, 14).
    """
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), labels))
    dataset = dataset.map(lambda path, label: (decode_gray(path, image_size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.cache(cache)
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(lambda images, label: ((images - mean) / std, label),
                          num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        dataset = dataset.map(lambda images, label: (augment(images, training=True), label),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
