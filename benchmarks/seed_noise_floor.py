"""Benchmark: how far test AUCs move when only `train.seed` changes (the noise floor).

Usage: python benchmarks/seed_noise_floor.py [--seeds 1 2 3 4 5]

Queues one `dvc exp run` per seed (`dvc exp run --queue -S train.seed=S`), runs the queue
one experiment at a time (`dvc queue start -j 1`, then `dvc queue wait` per experiment), and
reads each experiment's metrics back with `dvc exp show --json`. Prints the mean test AUC of
each seed, their mean and standard deviation, and the standard deviation of each class's AUC.
A pull-request change smaller than this spread is not shown to matter by one training run.
"""
import argparse
import statistics

from dvc_experiments import EVALUATE_METRICS, dvc, experiment_data

from chestxray.nih.labels import FINDINGS


def experiment_metrics(names):
    """{experiment name: metrics of the evaluate stage} from `dvc exp show --json`."""
    return {name: data["metrics"][EVALUATE_METRICS]["data"]
            for name, data in experiment_data(names).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    names = {f"seed-{seed}": seed for seed in args.seeds}
    for name, seed in names.items():
        dvc("exp", "run", "--queue", "--name", name, "-S", f"train.seed={seed}")
    dvc("queue", "start", "-j", "1")
    for name in names:
        dvc("queue", "logs", "--follow", name)
    metrics = experiment_metrics(set(names))
    missing = set(names) - set(metrics)
    if missing:
        raise SystemExit(f"no metrics for {sorted(missing)}: see `dvc queue status`")
    means = {name: metrics[name]["summary"]["mean_auc"] for name in names}
    for name, value in means.items():
        print(f"{name}: mean test AUC {value:.4f}")
    print(f"mean AUC over {len(means)} seeds: {statistics.mean(means.values()):.4f} "
          f"± {statistics.stdev(means.values()):.4f} (sd)")
    spreads = {finding: statistics.stdev(metrics[name]["auc"][finding] for name in names)
               for finding in FINDINGS if all(finding in metrics[name]["auc"] for name in names)}
    widest = max(spreads, key=spreads.get)
    print("per-class AUC sd: " + ", ".join(f"{finding} {value:.3f}"
                                          for finding, value in spreads.items()))
    print(f"largest per-class sd: {widest} {spreads[widest]:.3f}")


if __name__ == "__main__":
    main()
