"""Grad-CAM class activation maps (Selvaraju et al., 2017), batched."""
import keras
import numpy as np
import tensorflow as tf

from chestxray.core.errors import PipelineError
from chestxray.data.preprocessing import preprocess_files
from chestxray.model.network import pooled_feature_layer
from chestxray.nih.labels import FINDINGS

# The backbone's last feature map, which the head pools (DenseNet121's `relu`).
DEFAULT_LAYER = ""
DEFAULT_BATCH_SIZE = 32


class UnknownLayerError(PipelineError, ValueError):
    """The layer asked for is not in the model."""


def feature_layer(model, layer):
    """The layer named ``layer`` of ``model``, or for ``""`` the backbone's last feature map;
    :class:`UnknownLayerError` if there is none."""
    if not layer:
        return pooled_feature_layer(model)
    names = [candidate.name for candidate in model.layers]
    if layer not in names:
        raise UnknownLayerError(
            f"gradcam layer {layer!r} is not in model {model.name!r}; leave it empty for the "
            "backbone's last feature map, or name another convolutional layer (DenseNet121's "
            "earlier dense blocks end in 'pool2_relu', 'pool3_relu' and 'pool4_relu')")
    return model.get_layer(layer)


class Heatmaps:
    """Grad-CAM of ``model`` on ``layer`` ("" for the backbone's last feature map).

    ``heatmaps(images, classes)``: images float32 of shape (b, H, W, 1), normalised like
    training input, and classes int32 of shape (b,), the class explained in each image.
    Returns float32 (b, h, w) on the layer's grid (``heatmaps.grid``), each map scaled to
    0..1 (all zeros where the class gets no positive evidence). ``compiled``: a
    ``tf.function``, traced once, on its first call, for any batch size; else eager, which
    costs no trace but runs each batch several times slower (docs/benchmarks.md#grad-cam).
    """

    def __init__(self, model, layer=DEFAULT_LAYER, compiled=True):
        self.feature_model = keras.Model(
            model.inputs, [feature_layer(model, layer).output, model.output])
        self.grid = tuple(self.feature_model.outputs[0].shape[1:3])
        self.maps = tf.function(self._maps, input_signature=[
            tf.TensorSpec((None, *self.feature_model.input_shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int32)]) if compiled else self._maps

    def _maps(self, images, classes):
        with tf.GradientTape() as tape:
            features, predictions = self.feature_model([images], training=False)
            # Images do not interact in inference mode, so the gradient of the summed
            # scores holds each image's own gradient.
            scores = tf.gather(predictions, classes, axis=1, batch_dims=1)
        gradients = tape.gradient(scores, features)
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(channel_weights * features, axis=-1))
        peak = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
        return tf.math.divide_no_nan(cams, peak)

    def __call__(self, images, classes):
        if not len(images):
            return np.zeros((0, *self.grid), np.float32)
        return self.maps(np.asarray(images, np.float32),
                         np.asarray(classes, np.int32)).numpy().astype(np.float32)

    def batched(self, images, classes, batch_size):
        """The maps of ``images`` (n, H, W, 1) and ``classes`` (n,), ``batch_size`` at a time;
        float32 (n, h, w)."""
        return np.concatenate([np.zeros((0, *self.grid), np.float32)] + [
            self(images[start:start + batch_size], classes[start:start + batch_size])
            for start in range(0, len(images), batch_size)])


def gradcam(model, images, class_index, layer=DEFAULT_LAYER, batch_size=DEFAULT_BATCH_SIZE,
            resize=True):
    """Grad-CAM heatmaps for images in memory.

    Parameters
    ----------
    model : Keras model mapping (n, H, W, 1) images to (n, 14) probabilities.
    images : float32 array of shape (n, H, W, 1), normalised like training input.
    class_index : int, the class explained in every image, or int array of
        shape (n,), the class explained in each image.
    layer : name of a convolutional layer of ``model``; "" for the backbone's last
        feature map.
    batch_size : images per forward/backward pass.
    resize : scale the maps bilinearly to the input size (True), or keep the
        layer's own grid (h, w), each cell centred on its receptive field.

    Returns
    -------
    float32 array of shape (n, H, W), or (n, h, w) without ``resize``, each map
    scaled to 0..1 (all zeros where the class gets no positive evidence).
    """
    images = np.asarray(images, dtype=np.float32)
    classes = np.broadcast_to(np.asarray(class_index, dtype=np.int32), (len(images),))
    maps = Heatmaps(model, layer, compiled=False).batched(images, classes, batch_size)
    return upsample(maps, images.shape[1:3]) if resize else maps


def upsample(heatmaps, shape):
    """Resize heatmaps (h, w) or (n, h, w) in 0..1 bilinearly to ``shape`` = (H, W).

    Returns float32 (H, W) or (n, H, W), clipped to 0..1.
    """
    heatmaps = np.asarray(heatmaps, np.float32)
    if not len(heatmaps):
        return np.zeros((0, *shape), np.float32)
    resized = tf.image.resize(heatmaps[..., None], shape, method="bilinear")[..., 0]
    return np.clip(resized.numpy(), 0, 1)


def explain_files(heatmaps, preprocessing, paths, findings, batch_size=DEFAULT_BATCH_SIZE):
    """Grad-CAM of ``findings[i]`` in image file ``paths[i]``, on the layer's grid.

    ``heatmaps`` is a :class:`Heatmaps`. The files are preprocessed as the model was
    trained (:func:`~chestxray.data.preprocessing.preprocess_files`), ``batch_size`` at a
    time, so any number of files fits in memory. Returns float32 (n, h, w) in 0..1.
    """
    classes = np.array([FINDINGS.index(finding) for finding in findings], np.int32)
    return np.concatenate([np.zeros((0, *heatmaps.grid), np.float32)] + [
        heatmaps(preprocess_files(paths[start:start + batch_size], preprocessing),
                 classes[start:start + batch_size])
        for start in range(0, len(paths), batch_size)])
