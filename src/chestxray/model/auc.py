"""The mean ROC AUC that training monitors, over the classes val can score."""
import keras
import numpy as np


@keras.saving.register_keras_serializable(package="chestxray")
class MonitoredAUC(keras.metrics.AUC):
    """Multi-label ROC AUC averaged over the classes selected by ``monitored``.

    ``monitored`` is bool (classes,), or None for all. Keras' own
    ``label_weights`` does the averaging, but its config holds a tensor that
    ``keras.saving.load_model`` cannot rebuild, so a checkpoint compiled with it
    would never load again; this config stores plain booleans instead.
    """

    def __init__(self, num_labels, monitored=None, name="auc", **kwargs):
        kwargs.pop("label_weights", None)
        self.monitored = None if monitored is None else [bool(kept) for kept in monitored]
        super().__init__(multi_label=True, num_labels=num_labels, name=name,
                         label_weights=None if monitored is None
                         else np.asarray(self.monitored, "float32"), **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("label_weights", "multi_label"):
            config.pop(key)
        return {**config, "monitored": self.monitored}
