"""Beyond one machine: which strategy is chosen, and two real workers training in sync."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from chestxray.model.distribution import choose_strategy, cluster_workers, is_chief

SRC = Path(__file__).resolve().parents[1] / "src"

# Each worker trains a tiny model on the same seeded random data under the
# strategy choose_strategy() picks from TF_CONFIG, then writes what it ended with.
WORKER = """
import json, sys
import keras, numpy as np
from chestxray.model.distribution import choose_strategy, is_chief

strategy = choose_strategy()
keras.utils.set_random_seed(7)
features = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
targets = (features[:, :1] > 0).astype("float32")
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    # A metric, as the train stage has: Keras reduces metrics across workers too.
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
initial = [w.tolist() for w in model.get_weights()]
history = model.fit(features, targets, batch_size=32, epochs=2, verbose=0).history
with open(sys.argv[1], "w") as handle:
    json.dump({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
               "chief": is_chief(), "history": history, "initial": initial,
               "final": [w.tolist() for w in model.get_weights()]}, handle)
"""


def tf_config(workers, index):
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def free_ports(count):
    """Ports nothing listens on now (the OS picks them; released before use)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class FakeGpu:
    def __init__(self, name):
        self.name = name


def test_one_process_without_gpus_gets_the_default_strategy(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = choose_strategy(gpus=[])
    assert strategy.num_replicas_in_sync == 1
    assert type(strategy).__name__ == "_DefaultDistributionStrategy"
    assert is_chief()


def test_a_single_worker_tf_config_is_not_a_cluster():
    assert cluster_workers(tf_config(["127.0.0.1:1"], 0)) == ["127.0.0.1:1"]
    assert type(choose_strategy(tf_config(["127.0.0.1:1"], 0), gpus=[])).__name__ \
        == "_DefaultDistributionStrategy"


def test_several_local_gpus_get_a_mirrored_strategy_over_all_of_them(monkeypatch):
    created = {}

    def mirrored(devices):
        created["devices"] = devices
        return "mirrored"

    monkeypatch.setattr("tensorflow.distribute.MirroredStrategy", mirrored)
    assert choose_strategy("", gpus=[FakeGpu("/GPU:0"), FakeGpu("/GPU:1")]) == "mirrored"
    assert created["devices"] == ["/GPU:0", "/GPU:1"]


def test_cluster_membership_and_chief_follow_tensorflow_conventions():
    workers = ["10.0.0.1:2222", "10.0.0.2:2222"]
    assert cluster_workers(tf_config(workers, 1)) == workers
    assert cluster_workers("") == []
    assert is_chief(tf_config(workers, 0)) and not is_chief(tf_config(workers, 1))
    with_chief = json.dumps({"cluster": {"chief": ["c:1"], "worker": workers},
                             "task": {"type": "worker", "index": 0}})
    assert cluster_workers(with_chief) == ["c:1", *workers]
    assert not is_chief(with_chief)


def test_two_local_workers_train_in_sync_under_multi_worker_mirrored_strategy(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    processes = []
    for index in range(2):
        environment["TF_CONFIG"] = tf_config(workers, index)
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / f"worker{index}.json")],
            env=dict(environment), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [process.communicate(timeout=180)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for index, process in enumerate(processes):
        assert process.returncode == 0, f"worker {index} failed:\n{logs[index][-3000:]}"

    results = [json.loads((tmp_path / f"worker{index}.json").read_text()) for index in range(2)]
    assert [result["strategy"] for result in results] == [
        "FitCompatibleMultiWorkerMirroredStrategy"] * 2
    assert [result["replicas"] for result in results] == [2, 2]
    assert [result["chief"] for result in results] == [True, False]
    assert results[0]["history"] == results[1]["history"]
    for first, second in zip(results[0]["final"], results[1]["final"]):
        np.testing.assert_allclose(first, second, rtol=0, atol=1e-6)
    # Equal final weights mean something only if training moved them.
    moved = max(np.abs(np.subtract(final, initial)).max()
                for final, initial in zip(results[0]["final"], results[0]["initial"]))
    assert moved > 1e-3
