"""What the benchmarks that queue `dvc exp run` share: the dvc command and reading results back."""
import json
import subprocess

EVALUATE_METRICS = "metrics/evaluate/metrics.json"


def dvc(*arguments):
    """stdout of `dvc ARGUMENTS...`; a failure raises CalledProcessError."""
    return subprocess.run(["dvc", *arguments], check=True, capture_output=True,
                          text=True).stdout


def experiment_data(names):
    """{experiment name: its `data` (params, metrics) in `dvc exp show --json`}, for those of
    ``names`` that finished successfully: DVC shows a queued, running, failed or killed
    experiment with its baseline's metrics, not its own."""
    found = {}
    for commit in json.loads(dvc("exp", "show", "--json")):
        for experiment in commit.get("experiments") or []:
            if (experiment.get("executor") or {}).get("state", "success") != "success":
                continue
            for revision in experiment.get("revs", []):
                if revision.get("name") in names:
                    found[revision["name"]] = revision["data"]
    return found
