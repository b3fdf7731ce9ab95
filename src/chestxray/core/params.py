"""Load ``params.yaml`` and validate every value before any work starts."""
import difflib
import reprlib
from collections import Counter
from pathlib import Path

import yaml

from chestxray.core.errors import PipelineError
from chestxray.core.paths import PARAMS_FILE, WEIGHTS_DIR
from chestxray.nih.labels import FINDINGS

# Every backbone (chestxray.model.backbones) halves the resolution five times:
# inputs are multiples of 32.
BACKBONE_STRIDE = 32
# Oldest plausible age in years; older ages in a label table are typing errors.
MAX_AGE = 120


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
    parts = Path(value).parts
    if value not in ("imagenet", "none") and (
            Path(value).is_absolute() or ".." in parts or len(parts) < 2 or
            parts[0] != str(WEIGHTS_DIR)):
        return (f"must be 'imagenet', 'none' or a file under {WEIGHTS_DIR}/, train's DVC "
                f"dependency, so that a changed file reruns train: move the file there")


def _head_order(value):
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return (f"must be a list of the {len(FINDINGS)} finding names in the order of the "
                "checkpoint's head ([] = this pipeline's order)")
    if not value:
        return None
    problems = [(word, names) for word, names in [
        ("missing", [name for name in FINDINGS if name not in value]),
        ("unknown", [name for name in value if name not in FINDINGS]),
        ("repeated", [name for name, count in Counter(value).items() if count > 1])] if names]
    if problems:
        return (f"must name each of the {len(FINDINGS)} findings once, in the order of the "
                "checkpoint's head ([] = this pipeline's order): " + "; ".join(
                    f"{word} {', '.join(map(repr, names))}" for word, names in problems))


def _nih_urls(value):
    # The nih source checks the URLs themselves when it resolves them.
    if not isinstance(value, (str, list, dict)):
        return "must be a base URL, a list of URLs or a mapping {file name: URL} ([] = NIH's links)"


def _image_size(value):
    if _integer(BACKBONE_STRIDE, 4096)(value) or value % BACKBONE_STRIDE:
        return (f"must be a multiple of {BACKBONE_STRIDE} (the backbones downsample by "
                f"{BACKBONE_STRIDE}) in [{BACKBONE_STRIDE}, 4096]")


def _age_bands(value):
    if not isinstance(value, list) or not value or \
            any(_integer(1, MAX_AGE)(bound) for bound in value) or \
            any(low >= high for low, high in zip(value, value[1:])):
        return (f"must be a non-empty list of increasing integer ages in [1, {MAX_AGE}] "
                f"(band bounds, e.g. [40, 60, 80])")


SCHEMA = {
    "download": {
        "source": _choice("embedded", "nih", "url", "local"),
        "image_size": _image_size,
        "url": _text,
        "sha256": _text,
        "local_dir": _text,
        "nih_urls": _nih_urls,
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
        # Names and fine_tune_blocks are checked against the registry by the train
        # stage (chestxray.model.backbones.backbone_of), which alone imports it.
        "backbone": _text,
        "weights": _weights,
        "weights_findings": _head_order,
        # 0: no training, the model is the classifier checkpoint train.weights names.
        "epochs": _integer(0, 10_000),
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
        "fine_tune_blocks": _integer(0, 100),
        "fine_tune_lr": _number(0, 10, low_open=True),
        "lr_schedule": _choice("constant", "plateau", "cosine"),
        "plateau_factor": _number(0, 1, low_open=True),
        "plateau_patience": _integer(1, 10_000),
        "early_stopping_patience": _integer(0, 10_000),
        "restore_best": _boolean,
        "mixed_precision": _boolean,
        "deterministic": _boolean,
        "loss": _choice("weighted_bce", "bce", "focal"),
        "focal_gamma": _number(0, 10),
        "resample": _choice("none", "oversample", "undersample"),
        # 0: the whole training split each epoch; N: N batches (smoke runs, rehearsals).
        "steps_per_epoch": _integer(0, 1_000_000),
    },
    "evaluate": {
        "batch_size": _integer(1, 65_536),
        "bootstrap_resamples": _integer(1, 1_000_000),
        "bootstrap_seed": _integer(0),
        "threshold_rule": _choice("youden", "sensitivity"),
        "target_sensitivity": _number(0, 1, low_open=True),
        "calibration_bins": _integer(1, 1000),
        "subgroup_age_bands": _age_bands,
        "subgroup_min_patients": _integer(1),
    },
    "gradcam": {
        "layer": _text,
        "images_per_class": _integer(0, 100),
        "iou_threshold": _number(0, 1, low_open=True),
        "batch_size": _integer(1, 65_536),
    },
}


def _split_fractions(values):
    if values["test_fraction"] + values["val_fraction"] >= 1:
        return (f"split.test_fraction + split.val_fraction = {_shown(values['test_fraction'])} + "
                f"{_shown(values['val_fraction'])} must be below 1: the images left are the "
                f"training split")


def _no_training_needs_a_checkpoint(values):
    if values["epochs"] == 0 and values["weights"] in ("imagenet", "none"):
        return (f"train.epochs = 0 (no training) needs train.weights to be a full classifier "
                f"checkpoint file, not {_shown(values['weights'])}")


def _head_order_needs_a_checkpoint(values):
    if values["weights_findings"] and values["weights"] in ("imagenet", "none"):
        return (f"train.weights_findings orders the head of a classifier checkpoint, and "
                f"train.weights = {_shown(values['weights'])} has none: set it to []")


# Checks of several keys of one section, run once each key is valid.
SECTION_CHECKS = {"split": [_split_fractions],
                  "train": [_no_training_needs_a_checkpoint, _head_order_needs_a_checkpoint]}

# Values are shown short: a YAML value may be a huge (or self-referencing) structure.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def _shown(value):
    return _SHORT.repr(value)


def _did_you_mean(name, known, prefix=""):
    """`` (did you mean '<prefix><closest>'?)`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(map(str, known)), n=1)
    return f" (did you mean {_shown(prefix + close[0])}?)" if close else ""


def _section(params, section):
    """``params[section]``, refused unless it is a mapping."""
    if section not in params:
        raise params_error(f"missing section '{section}'{_did_you_mean(section, params)}")
    values = params[section]
    if not isinstance(values, dict):
        raise params_error(f"section '{section}' must be a mapping of keys, not "
                           f"{_shown(values)}")
    return values


def validate(params, sections):
    """Check ``params[section]`` against ``SCHEMA`` for each named section.

    Every schema key must be present and valid, and every key of a section
    must be a schema key (a misspelt key would otherwise be ignored while its
    default is used). Raises :class:`ParamsError` naming the key, its value
    and the allowed values, or the closest known key for an unknown one.
    """
    if not isinstance(params, dict):
        raise params_error(f"the top level must be a mapping of sections (download:, split:, "
                           f"...), not {_shown(params)}")
    for section in sections:
        values, schema = _section(params, section), SCHEMA[section]
        for key in values:
            if key not in schema:
                raise params_error(f"unknown key {_shown(f'{section}.{key}')}"
                                   f"{_did_you_mean(key, schema, f'{section}.')}")
        for key, check in schema.items():
            if key not in values:
                raise params_error(f"missing key '{section}.{key}'")
            problem = check(values[key])
            if problem:
                raise params_error(f"{section}.{key} = {_shown(values[key])} {problem}")
        for check in SECTION_CHECKS.get(section, ()):
            problem = check(values)
            if problem:
                raise params_error(problem)
    return params


def _yaml_problem(error):
    """One line saying why YAML could not be read (PyYAML's messages span several lines)."""
    if isinstance(error, yaml.reader.ReaderError):
        if error.encoding == "unicode":  # decoded, but holds a control character
            return (f"character U+{error.character:04X} at character {error.position}: "
                    f"{error.reason}")
        return (f"not {error.encoding.upper()} text ({error.reason} at byte {error.position}); "
                f"save it as UTF-8")
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark:
        mark = error.problem_mark
        return f"{error.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(error).split())


def load_params(*sections, path=PARAMS_FILE):
    """Read ``params.yaml`` and validate the named sections; returns the whole dict.

    The file is read as bytes: YAML decodes UTF-8, and UTF-16 with a byte-order mark.
    """
    try:
        text = Path(path).read_bytes()
        repeated = _repeated_key(yaml.compose(text, Loader=yaml.SafeLoader))
        params = yaml.safe_load(text)
    except OSError as error:
        raise ParamsError(f"{path}: cannot read parameters ({error.strerror})") from error
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        # PyYAML lets int()'s digit limit (ValueError) and deep nesting (RecursionError) through.
        raise ParamsError(f"{path}: cannot read parameters ({_yaml_problem(error)})") from error
    if repeated:
        # YAML keeps the last of two equal keys: `epochs: 3` then `epochs: 50` trains 50.
        raise ParamsError(f"{path}: key '{repeated}' appears twice; keep one")
    return validate({} if params is None else params, sections)


def _repeated_key(node, prefix=""):
    """The dotted name of the first key that a mapping of the YAML ``node`` holds twice, or None."""
    if isinstance(node, yaml.SequenceNode):
        return next(filter(None, (_repeated_key(item, prefix) for item in node.value)), None)
    if not isinstance(node, yaml.MappingNode):
        return None
    seen = set()
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        name = f"{prefix}{key.value}"
        if key.value in seen:
            return name
        seen.add(key.value)
        repeated = _repeated_key(value, f"{name}.")
        if repeated:
            return repeated
    return None
