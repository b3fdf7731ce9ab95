"""split: patient-level train/val/test split with a hard leakage gate."""
import logging

import pandas as pd

from chestxray.core.params import ParamsError, load_params
from chestxray.core.paths import DATASET_DIR, SPLIT_FILE
from chestxray.core.stage import run_stage
from chestxray.core.tracking import stage_outputs
from chestxray.data.split import (
    SPLITS, check_no_leakage, split_official, split_patients, split_positive_patients,
    split_prevalence,
)
from chestxray.nih import layout

OFFICIAL_TEST_LIST = DATASET_DIR / layout.TEST_LIST

log = logging.getLogger("split")


def main():
    params = load_params("split")["split"]
    labels = layout.read_dataset(DATASET_DIR)
    common = dict(seed=params["seed"], min_positive_patients=params["min_positive_patients"])
    if params["strategy"] == "official":
        if not OFFICIAL_TEST_LIST.exists():
            raise ParamsError(f"split.strategy = 'official' needs {OFFICIAL_TEST_LIST}, which "
                              "this source does not provide; use split.strategy: random")
        splits = split_official(labels, layout.read_text(OFFICIAL_TEST_LIST, "image list").split(),
                                params["val_fraction"], **common)
    else:
        splits = split_patients(labels, params["test_fraction"], params["val_fraction"], **common)
    check_no_leakage(labels["Patient ID"], splits)

    table = pd.DataFrame({"Image Index": labels["Image Index"],
                          "Patient ID": labels["Patient ID"], "split": splits})
    prevalence = split_prevalence(labels, splits)
    positives = split_positive_patients(labels, splits)
    for name in SPLITS:
        absent = [finding for finding, count in positives[name].items() if count == 0]
        if absent:
            log.warning("the %s split has no positive patient of %s: AUC is undefined there",
                        name, ", ".join(absent))
    with stage_outputs("split") as outputs:
        table.to_csv(outputs.path(SPLIT_FILE), index=False, lineterminator="\n")
        live = outputs.live
        for name in SPLITS:
            in_split = table[table["split"] == name]
            live.log_metric(f"{name}/images", len(in_split), plot=False)
            live.log_metric(f"{name}/patients", in_split["Patient ID"].nunique(), plot=False)
            live.log_metric(f"{name}/min_positive_patients", int(positives[name].min()), plot=False)
            rows = [{"finding": finding, "prevalence": round(float(value), 5)}
                    for finding, value in prevalence[name].items()]
            live.log_plot(f"prevalence_{name}", rows, x="prevalence", y="finding",
                          template="bar_horizontal", title=f"Label prevalence ({name})")
    counts = ", ".join(f"{(splits == name).sum()} {name}" for name in SPLITS)
    print(f"split {len(table)} images of {table['Patient ID'].nunique()} patients into "
          f"{counts} (no shared patients) -> {SPLIT_FILE}")


if __name__ == "__main__":
    run_stage(main)
