"""Choosing how training is spread: several machines, several GPUs, or one device.

The choice is made from the environment, so the same ``dvc repro`` runs on a
laptop, on a multi-GPU box and on a cluster:

- ``TF_CONFIG`` naming two or more workers (``cluster.worker`` plus
  ``cluster.chief``): ``MultiWorkerMirroredStrategy`` (patched so that Keras'
  ``fit`` runs under it); every worker runs the same program, reads its own
  shard of each batch, and gradients are all-reduced across workers each step;
- otherwise several local GPUs: ``MirroredStrategy`` over all of them;
- otherwise TensorFlow's default strategy (one device, no replication).

Under every strategy the model must be built and compiled inside
``strategy.scope()``, and the batch each step takes is split across
``strategy.num_replicas_in_sync`` replicas: multiply a per-replica batch size
by it.
"""
import json
import os

import tensorflow as tf


def cluster_workers(tf_config=None):
    """Addresses of the workers ``TF_CONFIG`` names (chief first), ``[]`` when unset.

    ``tf_config``: the JSON text, by default the ``TF_CONFIG`` environment
    variable. A chief is a worker too: it trains and also writes the outputs.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return []
    cluster = json.loads(text).get("cluster", {})
    return list(cluster.get("chief", [])) + list(cluster.get("worker", []))


def is_chief(tf_config=None):
    """Whether this process should write outputs (model, metrics).

    True outside a cluster; in one, the task of type ``chief``, or worker 0
    when the cluster has no chief (TensorFlow's own convention). Other workers
    still train, but what they save must go to a scratch path.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return True
    config = json.loads(text)
    task = config.get("task", {})
    if config.get("cluster", {}).get("chief"):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and task.get("index", 0) == 0


class FitCompatibleMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    With two or more workers, Keras 3.15's ``model.fit`` fails twice inside
    ``strategy.reduce`` (keras-team/keras#20585): it reduces the whole
    ``(x, y)`` batch structure at once, which the collective ops refuse ("Attempt
    to convert a value (PerReplica...)"), and it reduces scalar metrics along
    ``axis=0`` ("Invalid reduction dimension 0 for input with 0 dimensions").
    This reduces each leaf on its own, along ``axis`` only when the leaf has
    one. Everything else is the stock strategy.
    """

    def reduce(self, reduce_op, value, axis):
        reduce_leaf = super().reduce

        def reduce_one(leaf):
            first = self.experimental_local_results(leaf)[0]
            return reduce_leaf(reduce_op, leaf, axis if len(getattr(first, "shape", ())) else None)

        return tf.nest.map_structure(reduce_one, value)


def choose_strategy(tf_config=None, gpus=None):
    """The ``tf.distribute.Strategy`` for this process (see the module docstring).

    ``tf_config``: ``TF_CONFIG``'s JSON text, by default read from the
    environment (``MultiWorkerMirroredStrategy`` itself always reads the
    environment, so set the variable rather than passing a different text).
    ``gpus``: local logical devices with a ``name``, by default TensorFlow's GPUs.

    Call it at the start of the program, before any other TensorFlow op:
    ``MultiWorkerMirroredStrategy`` must be created before TensorFlow's runtime
    starts, and it blocks until every worker in ``TF_CONFIG`` has connected.
    """
    if len(cluster_workers(tf_config)) > 1:
        return FitCompatibleMultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU") if gpus is None else gpus
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()

