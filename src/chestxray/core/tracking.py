"""dvclive loggers for pipeline stages."""
from dvclive import Live

from chestxray.core.paths import metrics_dir


def stage_live(stage, resume=False):
    """A dvclive logger writing into ``stage``'s folder, :func:`~chestxray.core.paths.metrics_dir`.

    dvc.yaml declares every metric and plot itself, so dvclive must not edit
    it, and the stage runs inside ``dvc repro``/``dvc exp run``, which record
    the experiment, so dvclive must not create one of its own.
    """
    return Live(metrics_dir(stage), resume=resume, dvcyaml=False, save_dvc_exp=False)
