"""Load ``params.yaml`` and validate every value before any work starts."""
from pathlib import Path

import yaml

from chestxray.core.errors import PipelineError
from chestxray.core.paths import PARAMS_FILE

# DenseNet121 halves the resolution five times: inputs are multiples of 32.
DENSENET_STRIDE = 32


class ParamsError(PipelineError, ValueError):
    """An invalid or missing value in params.yaml."""


def params_error(message):
    """A :class:`ParamsError` whose message starts with the params file's name."""
    return ParamsError(f"{PARAMS_FILE}: {message}")


def _choice(*allowed):
    def check(value):
        if value not in allowed:
            return f"must be one of {', '.join(map(repr, allowed))}"
    return check


def _integer(low, high=None):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or \
                (high is not None and value > high):
            return f"must be an integer in [{low}, {high if high is not None else 'inf'}]"
    return check


def _number(low, high, *, low_open=False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not (low < value if low_open else low <= value) or value > high:
            return f"must be a number in {'(' if low_open else '['}{low}, {high}]"
    return check


def _boolean(value):
    if not isinstance(value, bool):
        return "must be true or false"


def _text(value):
    if not isinstance(value, str):
        return "must be a string"


def _weights(value):
    if not isinstance(value, str) or not value:
        return "must be 'imagenet', 'none' or the path of a weights file"


def _image_size(value):
    if _integer(DENSENET_STRIDE, 4096)(value) or value % DENSENET_STRIDE:
        return (f"must be a multiple of {DENSENET_STRIDE} (DenseNet121 downsamples by "
                f"{DENSENET_STRIDE}) in [{DENSENET_STRIDE}, 4096]")


SCHEMA = {
    "download": {
        "source": _choice("embedded", "nih", "url", "local"),
        "image_size": _image_size,
        "url": _text,
        "sha256": _text,
        "local_dir": _text,
        "limit_archives": _integer(0),
        "allow_http": _boolean,
        "on_invalid": _choice("stop", "skip"),
        "cache_dir": _text,
    },
    "split": {
        "strategy": _choice("random", "official"),
        "seed": _integer(0),
        "test_fraction": _number(0, 0.9, low_open=True),
        "val_fraction": _number(0, 0.9, low_open=True),
        "min_positive_patients": _integer(0),
    },
    "stats": {
        "max_images": _integer(1),
        "seed": _integer(0),
    },
    "train": {
        "image_size": _image_size,
        "weights": _weights,
        "epochs": _integer(1, 10_000),
        "batch_size": _integer(1, 65_536),
        "lr": _number(0, 10, low_open=True),
        "batchnorm_momentum": _number(0, 1),
        "seed": _integer(0),
        "augment_flip": _boolean,
        "augment_rotation": _number(0, 0.5),
        "augment_zoom": _number(0, 0.5),
        "augment_contrast": _number(0, 1),
        "normalization": _choice("featurewise", "samplewise"),
        "cache_dir": _text,
        "freeze_epochs": _integer(0, 10_000),
        "fine_tune_blocks": _integer(0, 4),
        "fine_tune_lr": _number(0, 10, low_open=True),
        "lr_schedule": _choice("constant", "plateau", "cosine"),
        "plateau_factor": _number(0, 1, low_open=True),
        "plateau_patience": _integer(1, 10_000),
        "early_stopping_patience": _integer(0, 10_000),
        "restore_best": _boolean,
        "mixed_precision": _boolean,
        "deterministic": _boolean,
    },
    "evaluate": {
        "batch_size": _integer(1, 65_536),
        "bootstrap_resamples": _integer(1, 1_000_000),
        "bootstrap_seed": _integer(0),
        "threshold_rule": _choice("youden", "sensitivity"),
        "target_sensitivity": _number(0, 1, low_open=True),
        "calibration_bins": _integer(1, 1000),
    },
    "gradcam": {
        "layer": _text,
        "images_per_class": _integer(0, 100),
        "iou_threshold": _number(0, 1, low_open=True),
        "batch_size": _integer(1, 65_536),
    },
}


def validate(params, sections):
    """Check ``params[section]`` against ``SCHEMA`` for each named section.

    Unknown keys are left to the section's owner (sources add their own);
    every schema key must be present and valid. Raises :class:`ParamsError`
    naming the key, its value and the allowed values.
    """
    for section in sections:
        values = params.get(section)
        if not isinstance(values, dict):
            raise ParamsError(f"{PARAMS_FILE}: missing section '{section}'")
        for key, check in SCHEMA[section].items():
            if key not in values:
                raise ParamsError(f"{PARAMS_FILE}: missing key '{section}.{key}'")
            problem = check(values[key])
            if problem:
                raise ParamsError(f"{PARAMS_FILE}: {section}.{key} = {values[key]!r} {problem}")
    return params


def load_params(*sections, path=PARAMS_FILE):
    """Read ``params.yaml`` and validate the named sections; returns the whole dict."""
    try:
        params = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ParamsError(f"{path}: cannot read parameters ({error})") from error
    return validate(params, sections)
