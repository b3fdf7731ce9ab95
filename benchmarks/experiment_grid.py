"""Benchmark: the experiment grid of issue 13, queued with `dvc exp run --queue`.

Usage: python benchmarks/experiment_grid.py [--seeds 42 1 2] [--resample none oversample
       undersample] [--loss weighted_bce bce focal] [--backbones densenet169 ...]
       [--backbone-seed 42] [--set K=V ...] [--jobs 1]

Queues, in the repository it runs in, one experiment per cell of `train.resample` x
`train.loss` x `train.seed`, and one per backbone with the default recipe and
`--backbone-seed` (the first seed unless given); `--set` adds `-S K=V` to every one (e.g.
`--set download.local_dir=...` for the real sample). An experiment that succeeded, or is queued or
running, is not queued again, so a grid can be made in parts and rerun to print its tables;
the queue's failed or killed experiments (all of them: run it in a clone of its own) are
removed and queued again. Each runs
up to the evaluate stage (Grad-CAM is not needed for the table), `--jobs` at a time (1 by
default, so the epoch times are those of the whole machine). Then prints Markdown tables:
- per cell: mean test AUC, mean ± sd over the seeds, and each seed's patient-level bootstrap
  95% interval; the difference from the default cell (none x weighted_bce) against the noise of
  two seed means (2 x sqrt(sd_cell^2/k + sd_default^2/k), k seeds);
- per backbone: mean test AUC with its interval (DenseNet121's: the default cell's run with
  the same seed), the median epoch time after the first (which
  traces the graph) and the training images/s that gives (validation included), from Keras'
  epoch lines in the experiment's log (DenseNet121's from the first default-recipe run that
  trained: a run whose params equal the committed ones is restored without training).
"""
import argparse
import math
import re
import statistics
import subprocess
import time

from dvc_experiments import EVALUATE_METRICS, dvc, experiment_data

DEFAULT_CELL = ("none", "weighted_bce")
# Keras' verbose=2 epoch line: "59/59 - 32s - 540ms/step - auc: ...".
EPOCH_LINE = re.compile(r"^(\d+)/\1 - (\d+)s - ", re.MULTILINE)


def cell_name(resample, loss, seed):
    return f"{resample}-{loss}-s{seed}"


def queue(name, overrides):
    dvc("exp", "run", "--queue", "--name", name,
        *[item for key, value in overrides.items() for item in ("-S", f"{key}={value}")],
        "evaluate")


def experiment_results(names):
    """{name: (evaluate metrics, train params)} from `dvc exp show --json`."""
    return {name: (data["metrics"][EVALUATE_METRICS]["data"],
                   data["params"]["params.yaml"]["data"]["train"])
            for name, data in experiment_data(names).items()
            if EVALUATE_METRICS in data.get("metrics", {})}


def run_queue(jobs):
    """Run the queue until no experiment is queued or running.

    A worker can stop while experiments wait: DVC's filesystem broker may hand a new worker
    the shutdown its previous worker broadcast. Workers are started again for what waits.
    """
    while True:
        status = dvc("queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            return
        if "Running" not in status and re.search(r"Worker status: 0 active", status):
            dvc("queue", "start", "-j", str(jobs))
        time.sleep(20)


def queue_log(name):
    """The queue's log of experiment ``name``; "" when the queue has none (an experiment made
    before `dvc queue remove --done`)."""
    try:
        return dvc("queue", "logs", name)
    except subprocess.CalledProcessError:
        return ""


def epoch_seconds(log):
    """Seconds of each epoch after the first, and the steps of one, from a queue log."""
    epochs = [(int(steps), int(seconds)) for steps, seconds in EPOCH_LINE.findall(log)]
    return [seconds for _, seconds in epochs[1:]], (epochs[0][0] if epochs else 0)


def interval(summary):
    return (f"{summary['mean_auc']:.3f} "
            f"({summary['mean_auc_low']:.3f}–{summary['mean_auc_high']:.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--resample", nargs="+", default=["none", "oversample", "undersample"])
    parser.add_argument("--loss", nargs="+", default=["weighted_bce", "bce", "focal"])
    parser.add_argument("--backbones", nargs="*",
                        default=["densenet169", "densenet201", "resnet50v2", "efficientnetv2b0",
                                 "convnext_tiny", "mobilenetv3small", "mobilenetv3large"])
    parser.add_argument("--backbone-seed", type=int)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report", action="store_true",
                        help="print the tables of the experiments made so far; run nothing")
    args = parser.parse_args()
    common = dict(item.split("=", 1) for item in args.set)
    # Seed by seed, so that a grid stopped early has every cell with its first seeds.
    cells = {cell_name(resample, loss, seed): (resample, loss, seed)
             for seed in args.seeds for resample in args.resample for loss in args.loss}
    backbone_seed = args.seeds[0] if args.backbone_seed is None else args.backbone_seed
    backbones = {f"backbone-{name}-s{backbone_seed}": name for name in args.backbones}
    # DenseNet121's row in the backbone table: the default cell with the backbones' seed.
    default_run = cell_name(*DEFAULT_CELL, backbone_seed)
    overrides = {name: {"train.resample": resample, "train.loss": loss, "train.seed": seed}
                 for name, (resample, loss, seed) in cells.items()}
    if backbones:
        overrides.setdefault(default_run, {"train.seed": backbone_seed})
    overrides.update({name: {"train.backbone": backbone, "train.seed": backbone_seed}
                      for name, backbone in backbones.items()})
    waiting = set(re.findall(r"^\w+ +(\S+) .* (?:Queued|Running)$", dvc("queue", "status"),
                             re.MULTILINE))
    made = set(experiment_results(set(overrides)))
    if not args.report:
        # A failed or killed experiment is run again under its name.
        dvc("queue", "remove", "--failed")
        for name, settings in overrides.items():
            if name not in made | waiting:
                queue(name, {**common, **settings})
        run_queue(args.jobs)
        made = set(experiment_results(set(overrides)))
    logs = {name: queue_log(name) for name in made}
    results = experiment_results(made)
    missing = sorted(set(overrides) - made)
    if missing:
        print(f"no metrics yet for {', '.join(missing)}: see `dvc queue status`\n")

    seeds = len(args.seeds)
    means = {}
    for name, (resample, loss, _) in cells.items():
        if name in results:
            means.setdefault((resample, loss), []).append((name, results[name][0]["summary"]))
    print(f"| train.resample | train.loss | mean test AUC, mean ± sd over {seeds} seeds | "
          "each seed (95% CI) | vs default | noise (2 sd of the difference) |")
    print("| --- | --- | --- | --- | --- | --- |")
    default = [summary["mean_auc"] for _, summary in means.get(DEFAULT_CELL, [])]
    for cell, runs in means.items():
        values = [summary["mean_auc"] for _, summary in runs]
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        difference = noise = float("nan")
        if len(default) > 1 and len(values) > 1:
            difference = statistics.mean(values) - statistics.mean(default)
            noise = 2 * math.sqrt(spread ** 2 / len(values)
                                  + statistics.stdev(default) ** 2 / len(default))
        print(f"| {cell[0]} | {cell[1]} | {statistics.mean(values):.3f} ± {spread:.3f} | "
              + "; ".join(interval(summary) for _, summary in runs)
              + f" | {difference:+.3f} | {noise:.3f} |")

    print()
    print("| train.backbone | mean test AUC (95% CI) | epoch time after the first (s) | "
          "training images/s |")
    print("| --- | --- | --- | --- |")
    # The default backbone's row: the default cell's AUC with the backbones' seed, and the
    # epoch times of its first default-recipe run that trained (one whose params equal the
    # committed run's is restored by DVC without training, and has no epoch lines).
    trained = [name for name in results
               if name.startswith(cell_name(*DEFAULT_CELL, "")) and epoch_seconds(logs[name])[0]]
    timing = {default_run: trained[0] if trained else default_run,
              **{name: name for name in backbones}}
    for name, backbone in {default_run: "densenet121 (default)", **backbones}.items():
        if name not in results:
            continue
        metrics, train = results[name]
        times, steps = epoch_seconds(logs[timing[name]])
        epoch = statistics.median(times) if times else float("nan")
        rate = steps * train["batch_size"] / epoch if times else float("nan")
        print(f"| {backbone} | {interval(metrics['summary'])} | {epoch:.0f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
