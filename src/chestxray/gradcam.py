"""Grad-CAM class activation maps (Selvaraju et al., 2017), batched."""
import keras
import matplotlib
import numpy as np
import tensorflow as tf

# Output of the last dense block after its batch norm and ReLU.
DEFAULT_LAYER = "relu"


def gradcam(model, images, class_index, layer=DEFAULT_LAYER):
    """Grad-CAM heatmaps of one class for a batch of images.

    Parameters
    ----------
    model : Keras model mapping (n, H, W, 1) images to (n, 14) probabilities.
    images : float32 array of shape (n, H, W, 1), normalised like training input.
    class_index : int, the class whose score is explained.
    layer : name of a convolutional layer of ``model``.

    Returns
    -------
    float32 array of shape (n, H, W), each map scaled to 0..1 (all zeros where
    the class gets no positive evidence).
    """
    feature_model = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    images = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, predictions = feature_model(images, training=False)
        score = predictions[:, class_index]
    gradients = tape.gradient(score, features)
    channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1))[..., None]
    cams = tf.image.resize(cams, images.shape[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cams, peak).numpy().astype(np.float32)


def overlay(gray, heatmap, alpha=0.4, colormap="jet"):
    """Blend a heatmap onto a radiograph.

    gray : uint8 (H, W); heatmap : float (H, W) in 0..1.
    Returns uint8 RGB array of shape (H, W, 3).
    """
    colours = matplotlib.colormaps[colormap](heatmap)[..., :3]
    base = np.repeat(gray[..., None] / 255.0, 3, axis=-1)
    return np.round(255 * ((1 - alpha) * base + alpha * colours)).astype(np.uint8)


def draw_box(rgb, box, colour=(0, 255, 0)):
    """Outline ``box`` = (x, y, w, h) in pixel coordinates on an RGB uint8 array, in place."""
    height, width = rgb.shape[:2]
    x0, y0, w, h = box
    left, top = int(np.clip(x0, 0, width - 1)), int(np.clip(y0, 0, height - 1))
    right, bottom = int(np.clip(x0 + w, 0, width - 1)), int(np.clip(y0 + h, 0, height - 1))
    rgb[top, left:right + 1] = rgb[bottom, left:right + 1] = colour
    rgb[top:bottom + 1, left] = rgb[top:bottom + 1, right] = colour
    return rgb
