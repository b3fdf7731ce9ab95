"""What a stage publishes: its dvclive metrics and its outputs, all at its end or not at all."""
import contextlib
import shutil
from pathlib import Path

from dvclive import Live

from chestxray.core.atomic import PendingOutputs, replace_directory
from chestxray.core.paths import metrics_dir, metrics_staging_dir


class StageOutputs:
    """The dvclive logger (``live``) of a running stage and the paths to write its outputs to."""

    def __init__(self, stage, live, pending):
        self.stage, self.live, self._pending = stage, live, pending

    def path(self, output):
        """Where to write ``output`` (a path of :mod:`chestxray.core.paths`) during the stage.

        A file under ``metrics/<stage>`` goes into dvclive's staging folder; any
        other output is a temporary file that is renamed into place when the
        stage succeeds.
        """
        output = Path(output)
        if output.is_relative_to(metrics_dir(self.stage)):
            staged = Path(self.live.dir) / output.relative_to(metrics_dir(self.stage))
            staged.parent.mkdir(parents=True, exist_ok=True)
            return staged
        return self._pending.path(output)


@contextlib.contextmanager
def stage_outputs(stage, resume=False):
    """Yield the :class:`StageOutputs` of ``stage``; publish them all if the block succeeds.

    dvclive writes into :func:`~chestxray.core.paths.metrics_staging_dir`, and
    outputs are written under temporary names (:meth:`StageOutputs.path`). Only
    when the block has ended without an exception, and dvclive has written its
    last files, are the outputs renamed into place and the staging folder
    swapped in for ``metrics/<stage>``: nothing but renames is left to fail or
    be killed. A stage that fails or is killed before keeps the last good run's
    outputs and metrics (dvc.yaml marks them ``persist`` so that DVC does not
    delete them before the run either). ``resume`` continues the staging
    folder of an interrupted run (train resuming a checkpoint); otherwise it
    starts empty.

    dvc.yaml declares every metric and plot itself, so dvclive must not edit
    it, and the stage runs inside ``dvc repro``/``dvc exp run``, which record
    the experiment, so dvclive must not create one of its own.
    """
    staging = metrics_staging_dir(stage)
    if not resume:
        shutil.rmtree(staging, ignore_errors=True)
    pending = PendingOutputs()
    try:
        with Live(str(staging), resume=resume, dvcyaml=False, save_dvc_exp=False) as live:
            yield StageOutputs(stage, live, pending)
    except BaseException:
        pending.discard()
        raise
    pending.commit()
    replace_directory(staging, metrics_dir(stage))
