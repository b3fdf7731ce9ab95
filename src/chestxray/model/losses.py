"""Per-class weighted binary cross-entropy for multi-label classification."""
import keras
from keras import ops

EPSILON = 1e-7


@keras.saving.register_keras_serializable(package="chestxray")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Sum over classes of weighted binary cross-entropy, averaged over the batch.

    For class ``c`` with weights ``pos_weights[c]`` and ``neg_weights[c]``::

        loss_c = -mean_i(pos_c * y_ic * log(p_ic + eps)
                         + neg_c * (1 - y_ic) * log(1 - p_ic + eps))

    and the loss is ``sum_c loss_c``. ``y_true`` and ``y_pred`` have shape
    (batch, classes); predictions are computed in float32 even under mixed
    precision.
    """

    def __init__(self, pos_weights, neg_weights, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weights = [float(w) for w in pos_weights]
        self.neg_weights = [float(w) for w in neg_weights]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        pos = ops.convert_to_tensor(self.pos_weights, dtype="float32")
        neg = ops.convert_to_tensor(self.neg_weights, dtype="float32")
        per_element = -(pos * y_true * ops.log(y_pred + EPSILON)
                        + neg * (1.0 - y_true) * ops.log(1.0 - y_pred + EPSILON))
        # Summing over classes here and letting Keras average over the batch
        # gives sum_c mean_i, the seeds' formulation.
        return ops.sum(per_element, axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weights": self.pos_weights,
                "neg_weights": self.neg_weights}
