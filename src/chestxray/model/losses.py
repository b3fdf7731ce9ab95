"""The training losses of the multi-label classifier, picked by name (``train.loss``)."""
import keras
from keras import ops

from chestxray.nih.labels import FINDINGS

EPSILON = 1e-7
# The names train.loss takes (see training_loss).
LOSSES = ("weighted_bce", "bce", "focal")


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


def training_loss(name, stats, focal_gamma):
    """The ``train.loss`` called ``name``.

    ``weighted_bce`` (the seeds' recipe): :class:`WeightedBinaryCrossentropy` with the
    per-class weights of ``stats`` (the stats stage's ``stats.json``). ``bce`` (CheXNet's
    reimplementations): unweighted binary cross-entropy. ``focal``: binary focal
    cross-entropy, ``-(1 - p_t) ** focal_gamma * log(p_t)`` per label (Lin et al. 2017),
    without class balancing. Keras' two average over the 14 labels where ``weighted_bce``
    sums them; Adam's steps do not depend on that scale.
    """
    if name == "weighted_bce":
        return WeightedBinaryCrossentropy([stats["pos_weights"][finding] for finding in FINDINGS],
                                          [stats["neg_weights"][finding] for finding in FINDINGS])
    if name == "bce":
        return keras.losses.BinaryCrossentropy()
    if name == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=focal_gamma)
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
