"""Which stages a change to the code or params reruns, decided before anything runs.

`dvc status` and `dvc repro --dry` need every output on disk; a pull request's runner has
none. This asks DVC's own stage checks with missing data allowed: a stage changed when
its command, a params value or a dependency that is on disk (code, params.yaml) differs
from what dvc.lock recorded, or when a dependency that is not on disk is recorded with
another hash than its producer (another stage, or a ``.dvc`` file) records now. Every
stage downstream of a changed one changes too.
"""
import networkx as nx
from dvc.exceptions import DvcException
from dvc.repo import Repo
from dvc.stage import PipelineStage

from chestxray.core.errors import PipelineError
from chestxray.core.stage import run_stage


class PipelineChangesError(PipelineError):
    """DVC could not read the pipeline (no repository, a broken dvc.yaml or dvc.lock)."""


def changed_stages(root="."):
    """Names of the dvc.yaml stages of the repository at ``root`` whose last run, as its
    dvc.lock records it, no longer matches the workspace's code, params and data records,
    in pipeline order. A stage dvc.lock does not know is changed.

    Raises PipelineChangesError with DVC's one-line reason when it cannot read the pipeline.
    """
    try:
        return _changed_stages(root)
    except DvcException as error:
        raise PipelineChangesError(f"cannot read the pipeline: {error}") from None


def _changed_stages(root):
    with Repo(root) as repo, repo.lock:
        graph = repo.index.graph
        changed = set()
        order = [stage for stage in nx.topological_sort(graph.reverse())
                 if isinstance(stage, PipelineStage)]
        for stage in order:
            upstream = list(nx.descendants(graph, stage))
            # A pipeline stage's lock entry is its outputs' hashes: none means no recorded run.
            unrecorded = not any(out.hash_info for out in stage.outs)
            if (unrecorded or any(other in changed for other in upstream)
                    or stage.changed_stage()
                    or stage.changed_deps(allow_missing=True, upstream=upstream)):
                changed.add(stage)
        return [stage.name for stage in order if stage in changed]


def main():
    """``python -m chestxray.pipeline_changes``: the changed stages, one per line."""
    for name in changed_stages():
        print(name)


if __name__ == "__main__":
    run_stage(main)
