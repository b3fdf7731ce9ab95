"""Nothing from a file runs as code: models load in Keras safe mode, no pickle anywhere."""
import ast

import keras
import pytest

from chestxray.model.saved import ModelFileError, load_model
from chestxray.model.training import CheckpointError, load_checkpoint_model

from conftest import REPO

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNSAFE_KEYWORDS = {("allow_pickle", True), ("safe_mode", False)}


def model_with_python_code():
    inputs = keras.Input((32, 32, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Lambda(lambda x: keras.ops.repeat(x, 14, axis=-1))(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture
def lambda_model_file(tmp_path):
    path = tmp_path / "model.keras"
    model_with_python_code().save(path)
    return path


def test_predict_refuses_a_model_carrying_python_code(lambda_model_file):
    with pytest.raises(ModelFileError, match="model.keras: cannot load the model .*Lambda"):
        load_model(lambda_model_file)


def test_a_checkpoint_carrying_python_code_is_refused(lambda_model_file):
    with pytest.raises(CheckpointError, match="cannot load the checkpoint .*Lambda"):
        load_checkpoint_model(lambda_model_file, model_with_python_code)


def python_sources():
    return [path for folder in ("src", "stages", "benchmarks", "presets", ".ci")
            for path in (REPO / folder).rglob("*.py")]


def test_no_unsafe_deserialisation_in_the_code():
    for path in python_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported = {(node.module or "").split(".")[0]}
            else:
                imported = set()
            assert not imported & UNSAFE_MODULES, f"{path}:{node.lineno} imports {imported}"
            if isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant):
                setting = (node.arg, node.value.value)
                assert setting not in UNSAFE_KEYWORDS, f"{path}: {node.arg}={node.value.value}"
            if isinstance(node, ast.Attribute) and node.attr in ("unsafe_load", "load") and \
                    isinstance(node.value, ast.Name) and node.value.id == "yaml":
                pytest.fail(f"{path}:{node.lineno} yaml.{node.attr}: use yaml.safe_load")
