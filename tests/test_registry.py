"""The trained model is a DVC artifact of type model, visible to model-registry tools."""
from dvc.repo import Repo

from conftest import REPO


def test_model_artifact_is_declared():
    artifacts = Repo(str(REPO)).artifacts.read()["dvc.yaml"]
    model = artifacts["chestxray-densenet121"]
    assert model.type == "model"
    assert model.path == "outputs/model.keras"
    assert "chestxray14" in model.labels and model.desc
