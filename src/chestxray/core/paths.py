"""Every file and folder the pipeline reads or writes, named once.

Paths are relative to the repository root, where ``dvc repro`` runs each
stage. ``dvc.yaml`` repeats them (DVC cannot import Python);
``tests/test_dvc_graph.py`` checks that it repeats exactly :data:`STAGE_OUTPUTS`.
"""
from pathlib import Path

PARAMS_FILE = Path("params.yaml")
# The embedded study's tables (tracked by data.dvc).
EMBEDDED_DATA_DIR = Path("data")

OUTPUTS_DIR = Path("outputs")
DATASET_DIR = OUTPUTS_DIR / "dataset"
# One SHA-256 per file of DATASET_DIR: what the stages after download depend on.
DATASET_MANIFEST = OUTPUTS_DIR / "dataset.sha256"
SPLIT_FILE = OUTPUTS_DIR / "split.csv"
STATS_FILE = OUTPUTS_DIR / "stats.json"
MODEL_FILE = OUTPUTS_DIR / "model.keras"
# Epoch checkpoints of an interrupted training, which the next run resumes;
# deliberately not a DVC output (see dvc.yaml).
CHECKPOINT_DIR = OUTPUTS_DIR / "checkpoints"
# Test-split probabilities, one row per image (evaluate); Grad-CAM explains them.
PREDICTIONS_FILE = OUTPUTS_DIR / "predictions.csv"

# The weights and checkpoint files train.weights may name: a dependency of train, so that a
# changed file reruns it (DVC cannot depend on a path named by a param that may be 'none').
WEIGHTS_DIR = Path("weights")

METRICS_DIR = Path("metrics")


def metrics_dir(stage):
    """The dvclive folder of ``stage``: ``metrics/<stage>``."""
    return METRICS_DIR / stage


def metrics_staging_dir(stage):
    """Where dvclive writes ``stage``'s metrics while it runs.

    See :func:`~chestxray.core.tracking.stage_outputs`.

    Beside ``metrics/`` so that publishing it is a rename, hidden so that git
    and DVC ignore what a failed or interrupted stage leaves there.
    """
    return METRICS_DIR / ".staging" / stage


def metrics_file(stage):
    """dvclive's metrics file of ``stage``."""
    return metrics_dir(stage) / "metrics.json"


def plots_dir(stage, kind):
    """dvclive's folder of one kind of plot of ``stage`` (``metrics``, ``custom``,
    ``images``, ``sklearn/roc`` ...)."""
    return metrics_dir(stage) / "plots" / kind


REPORT_FILE = metrics_dir("evaluate") / "report.md"
# dvclive's custom plots of the per-class and per-subgroup AUC intervals (evaluate),
# drawn as forest plots by the DVC template .dvc/plots/forest.json.
AUC_INTERVALS_PLOT = plots_dir("evaluate", "custom") / "auc_ci.json"
SUBGROUP_AUC_PLOT = plots_dir("evaluate", "custom") / "subgroup_auc.json"

# What each stage writes, by the dvc.yaml section that declares it.
STAGE_OUTPUTS = {
    "download": {"outs": [DATASET_DIR, DATASET_MANIFEST]},
    "split": {"outs": [SPLIT_FILE], "metrics": [metrics_file("split")],
              "plots": [plots_dir("split", "custom")]},
    "stats": {"outs": [STATS_FILE], "metrics": [metrics_file("stats")],
              "plots": [plots_dir("stats", "custom")]},
    "train": {"outs": [MODEL_FILE], "metrics": [metrics_file("train")],
              "plots": [plots_dir("train", "metrics")]},
    "evaluate": {"outs": [PREDICTIONS_FILE, REPORT_FILE], "metrics": [metrics_file("evaluate")],
                 "plots": [plots_dir("evaluate", "sklearn/roc"),
                           plots_dir("evaluate", "sklearn/precision_recall"),
                           plots_dir("evaluate", "sklearn/calibration"),
                           AUC_INTERVALS_PLOT, SUBGROUP_AUC_PLOT,
                           plots_dir("evaluate", "images")]},
    "gradcam": {"metrics": [metrics_file("gradcam")], "plots": [plots_dir("gradcam", "images")]},
}
