"""dvclive loggers for pipeline stages, whose metrics appear only when the stage succeeds."""
import contextlib
import shutil
from pathlib import Path

from dvclive import Live

from chestxray.core.atomic import replace_directory
from chestxray.core.paths import metrics_dir, metrics_staging_dir


@contextlib.contextmanager
def stage_live(stage, resume=False):
    """A dvclive logger for ``stage``, published to :func:`~chestxray.core.paths.metrics_dir` at the end.

    dvclive writes into :func:`~chestxray.core.paths.metrics_staging_dir` as
    the stage runs. Only when the block ends without an exception does that
    folder replace ``metrics/<stage>``, in one rename: a stage that fails or
    is killed leaves the last good run's metrics as they were (dvc.yaml marks
    them ``persist`` so that DVC does not delete them before the run either).
    Files the stage writes into ``metrics/<stage>`` itself belong in
    :func:`staged` paths inside the block. ``resume`` continues the staging
    folder of an interrupted run (train resuming a checkpoint); otherwise it
    starts empty.

    dvc.yaml declares every metric and plot itself, so dvclive must not edit
    it, and the stage runs inside ``dvc repro``/``dvc exp run``, which record
    the experiment, so dvclive must not create one of its own.
    """
    staging = metrics_staging_dir(stage)
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
    with Live(str(staging), resume=resume, dvcyaml=False, save_dvc_exp=False) as live:
        yield live
    replace_directory(staging, metrics_dir(stage))


def staged(live, stage, path):
    """Where to write ``path`` (a file under ``metrics/<stage>``) during ``live``'s run."""
    return Path(live.dir) / Path(path).relative_to(metrics_dir(stage))
