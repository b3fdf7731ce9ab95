"""Base against head: the change of each test AUC, with a patient-level bootstrap interval.

Two models' predictions on the test split (the evaluate stage's predictions.csv) are
compared. When both scored the same images with the same labels and patients, each
resample draws the same patients for both, so the interval is that of the paired
difference: the test set's sampling noise cancels and a small real effect shows. When the
split changed, the two sides are resampled independently (unpaired), which is wider.
"""
import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd

from chestxray.core.errors import PipelineError
from chestxray.core.stage import run_stage
from chestxray.evaluation.metrics import interval, per_class_auc, resampled_aucs, resampled_mean_auc
from chestxray.nih.labels import FINDINGS, classes_with_both_labels, parse_findings

MEAN = "mean AUC"
IDENTITY_COLUMNS = ["Image Index", "Patient ID", "Finding Labels"]


class PredictionsFileError(PipelineError, ValueError):
    """A predictions file that cannot be compared, named with its problem."""


@dataclass(frozen=True)
class ScoredTest:
    """One model's test-split predictions.

    images : (n,) str; patients : (n,) patient IDs; truth : (n, 14) 0/1 in FINDINGS
    order; scores : (n, 14) float64 probabilities.
    """
    images: np.ndarray
    patients: np.ndarray
    truth: np.ndarray
    scores: np.ndarray


def read_scored_test(path):
    """The evaluate stage's predictions file as a :class:`ScoredTest`, rows by image name.

    Raises PredictionsFileError naming the file when it lacks a column, holds a
    non-numeric score or an unknown finding.
    """
    try:
        table = pd.read_csv(path, dtype={"Image Index": str, "Patient ID": str,
                                         "Finding Labels": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PredictionsFileError(f"{path}: cannot read predictions ({error})") from None
    missing = [column for column in IDENTITY_COLUMNS + list(FINDINGS)
               if column not in table.columns]
    if missing:
        raise PredictionsFileError(f"{path}: no column {', '.join(missing)}; "
                                   "predictions must come from the evaluate stage")
    scores = table[list(FINDINGS)].apply(pd.to_numeric, errors="coerce")
    if scores.isna().any().any():
        raise PredictionsFileError(f"{path}: a probability is empty or not a number")
    table[list(FINDINGS)] = scores
    table = table.sort_values("Image Index", kind="stable")
    try:
        truth = parse_findings(table["Finding Labels"])
    except ValueError as error:
        raise PredictionsFileError(f"{path}: {error}") from None
    return ScoredTest(images=table["Image Index"].to_numpy(),
                      patients=table["Patient ID"].to_numpy(),
                      truth=truth,
                      scores=table[list(FINDINGS)].to_numpy(dtype=np.float64))


def same_test_set(base, head):
    """True when both sides scored the same images with the same patients and labels."""
    return (np.array_equal(base.images, head.images)
            and np.array_equal(base.patients, head.patients)
            and np.array_equal(base.truth, head.truth))


def verdict(change, low, high):
    """``no change``, ``within noise`` (the interval holds 0), ``higher``, ``lower``, or
    ``undefined`` where the AUC is undefined on either side."""
    if np.isnan(change):
        return "undefined"
    if low == high == change == 0:
        return "no change"
    if low <= 0 <= high:
        return "within noise"
    return "higher" if low > 0 else "lower"


def auc_changes(base, head, resamples, seed, level=0.95, progress=False):
    """Per-class and mean test AUC of head against base, with bootstrap intervals.

    base, head : :class:`ScoredTest`. Paired (the same resampled patients for both) when
    :func:`same_test_set`; otherwise each side is resampled on its own, from independent
    streams of ``seed``. Percentile intervals at ``level`` of head minus base per resample.
    The mean AUC averages the classes defined on both sides.

    Returns ``(table, paired)``: a DataFrame indexed by FINDINGS then :data:`MEAN` with
    float columns base, head, change, low, high (NaN where undefined) and str verdict.
    """
    paired = same_test_set(base, head)
    if paired:
        base_aucs, head_aucs = resampled_aucs(base.truth, [base.scores, head.scores],
                                              base.patients, resamples,
                                              np.random.default_rng(seed), progress)
    else:
        streams = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2)]
        base_aucs, head_aucs = (
            resampled_aucs(side.truth, [side.scores], side.patients, resamples, stream,
                           progress)[0]
            for side, stream in zip((base, head), streams))
    both = np.flatnonzero(classes_with_both_labels(base.truth)
                          & classes_with_both_labels(head.truth)).tolist()
    points = [per_class_auc(side.truth, side.scores) for side in (base, head)]
    rows = {}
    for column, finding in enumerate(FINDINGS):
        if column in both:
            rows[finding] = _row(points[0][finding], points[1][finding],
                                 head_aucs[:, column] - base_aucs[:, column], level)
        else:
            rows[finding] = _row(np.nan, np.nan, np.array([]), level)
    mean_points = [np.mean([point[FINDINGS[column]] for column in both]) if both else np.nan
                   for point in points]
    rows[MEAN] = _row(*mean_points, resampled_mean_auc(head_aucs, both)
                      - resampled_mean_auc(base_aucs, both), level)
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table, paired


def _row(base_auc, head_auc, differences, level):
    low, high = interval(differences, level) or (np.nan, np.nan)
    change = head_auc - base_auc
    return {"base": base_auc, "head": head_auc, "change": change, "low": low, "high": high,
            "verdict": verdict(change, low, high)}


def changes_markdown(table, paired, level=0.95):
    """The table of :func:`auc_changes` as Markdown: mean AUC first, then each finding."""
    def number(value, signed=False):
        return "n/a" if np.isnan(value) else f"{value:+.3f}" if signed else f"{value:.3f}"

    percent = f"{level:.0%}"
    lines = [f"| Test AUC | base | head | change ({percent} interval) | |",
             "|---|---:|---:|---:|---|"]
    for name in [MEAN, *FINDINGS]:
        row = table.loc[name]
        change = (f"{number(row['change'], True)} "
                  f"[{number(row['low'], True)}, {number(row['high'], True)}]"
                  if not np.isnan(row["low"]) else "n/a")
        label = f"**{name}**" if name == MEAN else name
        lines.append(f"| {label} | {number(row['base'])} | {number(row['head'])} | {change} "
                     f"| {row['verdict']} |")
    how = ("paired: base and head scored the same test images, and each resample draws the "
           "same patients for both" if paired else
           "unpaired: the test split differs between base and head, so each side was "
           "resampled on its own patients and the intervals are wider")
    return "\n".join(lines) + (f"\n\nIntervals: patient-level bootstrap of head minus base, "
                               f"{how}. A change whose interval holds 0 is within noise.\n")


def main(argv=None):
    """``python -m chestxray.evaluation.compare BASE_CSV HEAD_CSV``: the Markdown table."""
    parser = argparse.ArgumentParser(
        prog="python -m chestxray.evaluation.compare",
        description="Change of each test AUC from BASE_CSV to HEAD_CSV (the evaluate stage's "
                    "predictions.csv of two runs) with patient-level bootstrap intervals, as "
                    "Markdown on stdout.")
    parser.add_argument("base", help="predictions.csv of the base run")
    parser.add_argument("head", help="predictions.csv of the head run")
    parser.add_argument("--resamples", type=int, default=1000, help="default: 1000")
    parser.add_argument("--seed", type=int, default=42, help="default: 42")
    arguments = parser.parse_args(argv)
    if arguments.resamples < 1:
        raise PredictionsFileError("--resamples must be at least 1")
    table, paired = auc_changes(read_scored_test(arguments.base),
                                read_scored_test(arguments.head),
                                arguments.resamples, arguments.seed)
    print(changes_markdown(table, paired), end="")


if __name__ == "__main__":
    run_stage(main)
