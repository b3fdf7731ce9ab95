"""dvclive loggers for pipeline stages."""
from dvclive import Live


def stage_live(directory, resume=False):
    """A dvclive logger writing into ``directory``.

    dvc.yaml declares every metric and plot itself, so dvclive must not edit
    it, and the stage runs inside ``dvc repro``/``dvc exp run``, which record
    the experiment, so dvclive must not create one of its own.
    """
    return Live(directory, resume=resume, dvcyaml=False, save_dvc_exp=False)
