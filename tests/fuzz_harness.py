"""The fuzzer: bad input through each door it enters by, and the property every run must keep.

Bad input enters the pipeline through ``params.yaml``, the label table and image files. The
hypothesis strategies below make such input as :class:`Case` objects; :func:`run_case` writes
one into a copy of a small working folder, runs a stage (download with the ``local`` source,
split, stats) or ``python -m chestxray predict`` there, and :func:`violations` checks the
property:

* the run succeeds (exit 0), or exits 1 with exactly one stderr line starting ``error: ``,
  the last line, and no traceback (the other lines are the stage's log and progress bars);
* every file that existed before is byte-identical afterwards, except the outputs of a run
  that succeeded; no run writes outside its outputs, and a failed run leaves no new file
  (dvclive's hidden staging folder aside, which is left by design).

Runs happen in this process for speed (:func:`run_in_process`: the stage script through runpy,
as ``python stages/<stage>.py`` runs it); :func:`run_subprocess` runs them for real, and
``test_fuzz_harness.py`` checks that both give the same outcome. Used by
``tests/test_fuzz_*.py`` (a small fixed budget) and ``benchmarks/fuzz.py`` (a large one).
"""
import contextlib
import copy
import csv
import hashlib
import io
import logging
import os
import runpy
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

import chestxray
from chestxray.core.paths import (
    DATASET_DIR, PARAMS_FILE, SPLIT_FILE, STAGE_OUTPUTS, metrics_dir, metrics_staging_dir,
)
from chestxray.nih.labels import BOX_TABLE_HEADER, FINDINGS, LABEL_TABLE_COLUMNS, NO_FINDING
from chestxray.nih.layout import BOX_TABLE, IMAGES, IMAGES_POINTER, LABEL_TABLE, TEST_LIST

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / "stages"
SOURCE = Path("source")  # the local source's NIH-layout folder inside a working folder
SOURCE_TABLE = SOURCE / LABEL_TABLE
DATASET_TABLE = DATASET_DIR / LABEL_TABLE
PREDICT_IMAGE = Path("radiograph.png")
PREDICT_OUT = Path("predictions.csv")
# The template's study: 20 patients, 30 images (the first 10 patients have two).
PATIENTS, IMAGE_COUNT, IMAGE_SIDE = 20, 30, 24
TRACEBACK = "Traceback (most recent call last)"


# The tests' settings: fixed examples (derandomized; each test sets its max_examples), no
# deadline (a stage run takes ~40 ms, the first one more), no example database written into
# the repository.
CI_SETTINGS = settings(derandomize=True, deadline=None, database=None,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- the working folder ------------------------------------------------------------------

def template_rows():
    """The template's label table: rows of text, positives of every finding, half 'No Finding'."""
    rows = []
    for index in range(IMAGE_COUNT):
        patient = index % PATIENTS + 1
        findings = FINDINGS[index // 2 % len(FINDINGS)] if index % 2 else NO_FINDING
        if index % 7 == 3 and not index % 2:
            findings = "Mass|Nodule"
        rows.append({"Image Index": f"{patient:08d}_{index // PATIENTS:03d}.png",
                     "Finding Labels": findings, "Follow-up #": str(index // PATIENTS),
                     "Patient ID": str(patient), "Patient Age": "50", "Patient Gender": "F",
                     "View Position": "PA", "OriginalImage[Width": "1024", "Height]": "1024",
                     "OriginalImagePixelSpacing[x": "0.143", "y]": "0.143"})
    return rows


def template_params():
    """The repository's params with the local source on ``source/`` and a small study's settings."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"].update(source="local", local_dir=str(SOURCE), on_invalid="stop")
    params["split"]["min_positive_patients"] = 1
    params["train"]["image_size"] = 32
    return params


def template_image(index):
    """Bytes of the template's image ``index``: 8-bit gray, 16-bit gray or RGB, random pixels."""
    rng = np.random.default_rng(index)
    shape = (IMAGE_SIDE, IMAGE_SIDE)
    picture = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)),
               Image.fromarray(rng.integers(0, 65536, shape, dtype=np.uint16)),
               Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))][index % 3]
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def table_bytes(rows, columns=LABEL_TABLE_COLUMNS, line_end="\n", trailing_comma=False):
    """CSV bytes (UTF-8) of ``rows`` (dicts) under ``columns``, as csv.writer writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    extra = [""] if trailing_comma else []
    writer.writerow([*columns, *extra])
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns] + extra)
    return buffer.getvalue().encode()


def make_template(folder):
    """A working folder where download (local source), split and stats have run.

    ``folder`` gets ``source/`` (an NIH-layout folder of 30 small PNGs of 20 patients),
    ``params.yaml``, ``outputs/`` and ``metrics/``. Returns ``folder``.
    """
    folder = Path(folder)
    (folder / SOURCE / IMAGES).mkdir(parents=True)
    rows = template_rows()
    (folder / SOURCE_TABLE).write_bytes(table_bytes(rows))
    for index, row in enumerate(rows):
        (folder / SOURCE / IMAGES / row["Image Index"]).write_bytes(template_image(index))
    (folder / PARAMS_FILE).write_text(yaml.safe_dump(template_params(), sort_keys=False))
    for stage in ("download", "split", "stats"):
        outcome = run_in_process(stage, folder)
        if outcome.status:
            raise RuntimeError(f"the template's {stage} stage failed:\n{outcome.stderr}")
    return folder


def train_images(template):
    """Image names of the template's train split (the images the stats stage reads)."""
    with open(Path(template) / SPLIT_FILE, newline="") as handle:
        return [row["Image Index"] for row in csv.DictReader(handle) if row["split"] == "train"]


@contextlib.contextmanager
def case_folder(template, base):
    """A fresh copy of ``template`` under ``base``, its dataset pointing at its own images."""
    folder = Path(tempfile.mkdtemp(dir=base, prefix="case-"))
    try:
        shutil.copytree(template, folder, dirs_exist_ok=True)
        (folder / DATASET_DIR / IMAGES_POINTER).write_text(
            f"{(folder / SOURCE / IMAGES).resolve()}\n")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- running a command -------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    status: int
    stderr: str


@dataclass(frozen=True)
class Case:
    """One fuzzed input: files written into a working folder, and the command reading them.

    ``command`` is a stage name or, for ``predict``, the arguments after
    ``python -m chestxray`` (the model's path is added by :func:`run_case`).
    """
    kind: str  # params, table or image: the door the bad input came through
    command: tuple
    files: dict = field(default_factory=dict)  # {path relative to the folder: bytes}

    @property
    def target(self):
        return self.command[0]


def predict_command(model_path):
    """``predict``'s arguments for the image of a predict case and the model at ``model_path``."""
    return ("predict", str(PREDICT_IMAGE), "--model", str(model_path), "--out", str(PREDICT_OUT))


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is now: each run's logs go to its capture."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()


@contextlib.contextmanager
def _stage_logging():
    """Log as ``run_stage`` does in a fresh process: INFO and up to stderr, ``LEVEL message``.

    With a handler on the root logger, ``run_stage``'s ``logging.basicConfig`` does nothing,
    so each run's logs reach its own stderr rather than the first run's.
    """
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


_MODELS = {}  # resolved model path -> (model, preprocessing): DenseNet121 loads in ~10 s


@contextlib.contextmanager
def _models_loaded_once():
    """``chestxray.model.saved.load_model`` loading each file once, while the block runs."""
    from chestxray.model import saved
    load = saved.load_model

    def load_once(path):
        key = str(Path(path).resolve())
        if key not in _MODELS:
            _MODELS[key] = load(path)
        return _MODELS[key]

    saved.load_model = load_once
    try:
        yield
    finally:
        saved.load_model = load


def saved_model(folder):
    """Save a 32-px DenseNet121 of this pipeline in ``folder`` for predict; returns its path.

    The model is kept in memory too, so in-process runs do not load the file.
    """
    from chestxray.data.preprocessing import Preprocessing
    from chestxray.model.network import build_model
    from chestxray.model.saved import save_model
    path = Path(folder) / "model.keras"
    model, preprocessing = build_model(32), Preprocessing(32, "featurewise", 100.0, 50.0)
    save_model(model, preprocessing, path, "densenet121")
    _MODELS[str(path.resolve())] = (model, preprocessing)
    return path


def _execute(command):
    """Run ``command`` as its script would run as a program, up to its exit."""
    if command[0] != "predict":
        runpy.run_path(str(STAGES / f"{command[0]}.py"), run_name="__main__")
        return
    argv = sys.argv
    sys.argv = ["python -m chestxray", *command]
    try:
        with _models_loaded_once():
            # By path: run_module would warn when a test imported chestxray.__main__ before.
            runpy.run_path(str(Path(chestxray.__file__).parent / "__main__.py"),
                           run_name="__main__")
    finally:
        sys.argv = argv


def _exit_status(code):
    """The status of a process that raised ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_in_process(command, cwd):
    """Run ``command`` (a stage name or a :class:`Case` command) in this process, in ``cwd``.

    stdout is discarded; stderr is captured. An exception that escapes is printed as Python
    prints an uncaught one, with status 1, as the real process would end.
    """
    command = (command,) if isinstance(command, str) else tuple(command)
    stderr = io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr), \
                _stage_logging():
            try:
                _execute(command)
                status = 0
            except SystemExit as stop:
                status = _exit_status(stop.code)
            except Exception:  # what Python does with an uncaught exception
                traceback.print_exc()
                status = 1
    finally:
        os.chdir(previous)
    return Outcome(status, stderr.getvalue())


def run_subprocess(command, cwd, timeout=600):
    """Run ``command`` as a real process in ``cwd``: ``python stages/<stage>.py`` or
    ``python -m chestxray predict ...``."""
    command = (command,) if isinstance(command, str) else tuple(command)
    program = ["-m", "chestxray", *command] if command[0] == "predict" else \
        [str(STAGES / f"{command[0]}.py")]
    result = subprocess.run([sys.executable, *program], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout)
    return Outcome(result.returncode, result.stderr)


# --- the property ------------------------------------------------------------------------

def fingerprints(folder):
    """{path relative to ``folder``: SHA-256} of every file under ``folder``."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def outputs_of(command):
    """Path prefixes a successful run of ``command`` may change: its dvc.yaml outputs and
    metrics folder, or predict's ``--out`` file."""
    if command[0] == "predict":
        return (str(PREDICT_OUT),)
    declared = [path for paths in STAGE_OUTPUTS[command[0]].values() for path in paths]
    return tuple(Path(path).as_posix() for path in (*declared, metrics_dir(command[0])))


def _under(path, prefixes):
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in prefixes)


def violations(outcome, before, after, outputs):
    """What a run broke of the property: a list of one-line descriptions (empty: none).

    ``before``, ``after``: :func:`fingerprints` of the working folder; ``outputs``: what a
    successful run may change (:func:`outputs_of`).
    """
    problems = []
    lines = outcome.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    if TRACEBACK in outcome.stderr:
        problems.append(f"traceback: {lines[-1] if lines else ''}")
    if outcome.status == 0:
        may_change = outputs
        if errors:
            problems.append(f"exit 0 with an error line: {errors[0]}")
    elif outcome.status == 1:
        may_change = ()
        if len(errors) != 1 or lines[-1] != errors[0]:
            problems.append(f"exit 1 with {len(errors)} error lines, last line "
                            f"{lines[-1] if lines else ''!r}")
    else:
        may_change = ()
        problems.append(f"exit status {outcome.status}")
    changed = [path for path in before if after.get(path) != before[path]
               and not _under(path, may_change)]
    if changed:
        problems.append(f"changed or removed {changed[:3]}")
    # dvclive's hidden staging folder is left by a failed stage, by design (core/tracking.py).
    new = [path for path in after if path not in before and not _under(path, may_change)
           and not _under(path, (metrics_staging_dir("").as_posix().rstrip("/"),))]
    if new:
        problems.append(f"wrote {new[:3]}")
    return problems


def run_case(case, template, base, runner=run_in_process, model_path=None):
    """Run ``case`` in a copy of ``template`` under ``base``: (:class:`Outcome`, violations)."""
    command = case.command if case.target != "predict" else predict_command(model_path)
    with case_folder(template, base) as folder:
        for relative, content in case.files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(content)
        before = fingerprints(folder)
        outcome = runner(command, folder)
        return outcome, violations(outcome, before, fingerprints(folder), outputs_of(command))


# --- params.yaml -------------------------------------------------------------------------

SECTIONS_READ = {"download": ("download",), "split": ("split",), "stats": ("stats", "train")}
texts = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), texts,
    st.sampled_from(["", "1e400", "yes", "0x10", ".nan", "local", "skip", "random", "official",
                     "samplewise", "none", "imagenet", "source", "missing/folder", "0.5"]))
yaml_values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=3)
    | st.dictionaries(texts, children, max_size=3), max_leaves=5)
# A source that downloads (nih, url) or renders (embedded) is not fuzzed: it would reach the
# network, or need the embedded study's tables.
UNFUZZED_SOURCES = ("nih", "url", "embedded")
# Pixel statistics hold every sampled image at train.image_size in float64 at once; past
# this size the template's 30 images alone take gigabytes (see benchmarks/fuzz.py).
LARGEST_STATS_SIZE = 256


@st.composite
def misspelt(draw, word):
    """``word`` with one typing slip: a letter dropped, doubled, swapped or changed, or a suffix."""
    word = str(word)
    if not word:
        return draw(texts)
    at = draw(st.integers(0, len(word) - 1))
    slip = draw(st.sampled_from(["drop", "double", "swap", "change", "suffix", "case"]))
    if slip == "drop":
        return word[:at] + word[at + 1:]
    if slip == "double":
        return word[:at + 1] + word[at:]
    if slip == "swap" and at + 1 < len(word):
        return word[:at] + word[at + 1] + word[at] + word[at + 2:]
    if slip == "change":
        return word[:at] + draw(st.characters(codec="utf-8")) + word[at + 1:]
    if slip == "case":
        return word.swapcase()
    return word + draw(st.sampled_from(["s", "_", " ", "2"]))


def plausible(value):
    """Values of the type of ``value``, often valid ones: runs that go on to do their work."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-1, 2 ** 40) | st.integers(0, 100)
    if isinstance(value, float):
        return st.floats(0, 1)
    if isinstance(value, str):
        return st.sampled_from([value, "", "skip", "random", "official", "samplewise", "none",
                                "source", "local"])
    return st.just(value)


@st.composite
def params_edit(draw, params, sections):
    """``params`` with one edit: a value of another type or range, a misspelt, extra or
    missing key or section, a section of the wrong shape, or another top level."""
    params = copy.deepcopy(params)
    section = draw(st.sampled_from(sections))
    values = params.get(section) if isinstance(params, dict) else None
    edit = draw(st.sampled_from(["value", "value", "plausible value", "plausible value",
                                 "misspell key", "extra key", "drop key", "drop section",
                                 "misspell section", "section shape", "top level"]))
    if edit in ("value", "plausible value", "misspell key", "extra key", "drop key") and \
            isinstance(values, dict) and values:
        key = draw(st.sampled_from(sorted(values, key=str)))
        if edit == "value":
            values[key] = draw(yaml_values)
        elif edit == "plausible value":
            values[key] = draw(plausible(values[key]))
        elif edit == "misspell key":
            values[draw(misspelt(key))] = values.pop(key)
        elif edit == "extra key":
            values[draw(st.one_of(texts, misspelt(key), scalars))] = draw(yaml_values)
        else:
            del values[key]
    elif edit in ("drop section", "misspell section") and isinstance(params, dict):
        moved = params.pop(section, None)
        if edit == "misspell section":
            params[draw(misspelt(section))] = moved
    elif edit == "section shape" and isinstance(params, dict):
        params[section] = draw(st.one_of(scalars, st.lists(scalars, max_size=3)))
    elif edit == "top level":
        params = draw(st.one_of(scalars, st.lists(st.just(params), max_size=2),
                                st.just({"params": params})))
    return params


def _safe_for_the_fuzzer(params):
    """``params`` with a source the fuzzer may run (see UNFUZZED_SOURCES) and stats small enough."""
    download = params.get("download") if isinstance(params, dict) else None
    if isinstance(download, dict) and download.get("source") in UNFUZZED_SOURCES:
        download["source"] = "local"
    train = params.get("train") if isinstance(params, dict) else None
    if isinstance(train, dict) and isinstance(train.get("image_size"), int) and \
            train["image_size"] > LARGEST_STATS_SIZE:
        train["image_size"] = 32
    return params


@st.composite
def params_text(draw, params):
    """YAML text of ``params`` in one of PyYAML's styles, maybe with a non-ASCII comment, or
    text that is not YAML at all."""
    form = draw(st.sampled_from(["block", "block", "block", "flow", "comment", "broken",
                                 "garbage"]))
    if form == "garbage":
        return draw(st.text(st.characters(codec="utf-8"), max_size=80))
    text = yaml.safe_dump(params, sort_keys=False, allow_unicode=True,
                          default_flow_style=form == "flow")
    if form == "comment":
        return "# paramètres réglés à la main — café\n" + text
    if form == "broken":
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from(["[", "{", "\t", ": :", "'", "&a *b", "- "]))
    return text


@st.composite
def encoded(draw, text):
    """``text`` as bytes: UTF-8 (with or without a BOM), UTF-16, Latin-1, or random bytes."""
    encoding = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "utf-16", "utf-16-le",
                                                     "latin-1", "random"]))
    if encoding == "random":
        return draw(st.binary(max_size=120))
    return text.encode(encoding, errors="replace")


@st.composite
def params_cases(draw, targets=("download", "split", "stats")):
    """A :class:`Case` of a fuzzed ``params.yaml`` read by one of ``targets``."""
    target = draw(st.sampled_from(targets))
    params = template_params()
    for _ in range(draw(st.integers(0, 3))):
        params = draw(params_edit(params, SECTIONS_READ[target]))
    text = draw(params_text(_safe_for_the_fuzzer(params)))
    return Case("params", (target,), {PARAMS_FILE.as_posix(): draw(encoded(text))})


# --- the label table ---------------------------------------------------------------------

CELL_VALUES = st.one_of(
    st.sampled_from(["", "nan", "NaN", "NA", "null", "None", "1e400", "-1e400", "2.7", "-3", "0",
                     "99999999999999999999", "1.0", " 7 ", "0x1F", "٣", NO_FINDING,
                     f"Mass|{NO_FINDING}", "Mass|", "|", "Mass||Nodule", "mass", "Flu",
                     "Infiltrate", "../secret.png", "/etc/hostname", "images/a.png", "a\x00b",
                     ".", "..", "é.png", '"', "a,b", "a\nb", "a\rb"]),
    texts, st.integers().map(str), st.floats().map(str), st.sampled_from(FINDINGS))


@st.composite
def table_edit(draw, rows, columns):
    """``(rows, columns)`` with one edit of a cell, of the rows or of the columns."""
    rows, columns = [dict(row) for row in rows], list(columns)
    edit = draw(st.sampled_from(["cell", "cell", "cell", "drop rows", "duplicate row",
                                 "drop column", "extra column", "rename column",
                                 "duplicate column", "no finding", "one class", "swap"]))
    if edit == "cell" and rows:
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][draw(st.sampled_from(LABEL_TABLE_COLUMNS))] = draw(CELL_VALUES)
    elif edit == "drop rows":
        kept = draw(st.lists(st.integers(0, max(len(rows) - 1, 0)), max_size=len(rows),
                             unique=True))
        rows = [rows[index] for index in sorted(kept)] if rows else rows
    elif edit == "duplicate row" and rows:
        copied = dict(rows[draw(st.integers(0, len(rows) - 1))])
        if draw(st.booleans()):
            copied["Patient ID"] = draw(CELL_VALUES)
        rows.append(copied)
    elif edit == "drop column" and columns:
        columns.remove(draw(st.sampled_from(columns)))
    elif edit == "extra column":
        name = draw(texts)
        columns.insert(draw(st.integers(0, len(columns))), name)
        for row in rows:
            row[name] = draw(CELL_VALUES)
    elif edit == "rename column" and columns:
        old = draw(st.sampled_from(columns))
        new = draw(misspelt(old))
        columns[columns.index(old)] = new
        for row in rows:
            row[new] = row.get(old, "")
    elif edit == "duplicate column" and columns:
        columns.append(draw(st.sampled_from(columns)))
    elif edit == "no finding":
        rows = [dict(row, **{"Finding Labels": NO_FINDING}) for row in rows]
    elif edit == "one class":
        finding = draw(st.sampled_from(FINDINGS))
        rows = [dict(row, **{"Finding Labels": finding if index % 3 == 0 else NO_FINDING})
                for index, row in enumerate(rows)]
    elif edit == "swap" and len(columns) > 1:
        first, second = draw(st.lists(st.integers(0, len(columns) - 1), min_size=2,
                                      max_size=2, unique=True))
        columns[first], columns[second] = columns[second], columns[first]
    return rows, columns


@st.composite
def table_files(draw):
    """Bytes of a fuzzed label table: edits of the template's, in some encoding and line
    format; or empty, header-only, cut short or random bytes."""
    form = draw(st.sampled_from(["edited"] * 6 + ["empty", "header only", "cut", "random"]))
    if form == "empty":
        return b""
    if form == "random":
        return draw(st.binary(max_size=300))
    rows, columns = template_rows(), list(LABEL_TABLE_COLUMNS)
    if form == "header only":
        rows = []
    for _ in range(draw(st.integers(1 if form == "edited" else 0, 3))):
        rows, columns = draw(table_edit(rows, columns))
    text = table_bytes(rows, columns, line_end=draw(st.sampled_from(["\n", "\r\n", "\r"])),
                       trailing_comma=draw(st.booleans())).decode()
    content = draw(encoded(text)) if draw(st.booleans()) else text.encode()
    if form == "cut":
        content = content[:draw(st.integers(0, len(content)))]
    return content


@st.composite
def box_table_files(draw):
    """Bytes of a fuzzed box table (official format) naming the template's images."""
    rows = [[row["Image Index"], finding, "12.5", "20", "300", "40.25"]
            for row, finding in zip(template_rows(), ("Mass", "Infiltrate", "Nodule"))]
    for _ in range(draw(st.integers(0, 3))):
        rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, 5))] = draw(CELL_VALUES)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return draw(encoded(BOX_TABLE_HEADER + "\n" + buffer.getvalue()))


@st.composite
def image_list_files(draw):
    """Bytes of a fuzzed NIH split list (test_list.txt): image names and odd lines."""
    names = draw(st.lists(st.sampled_from([row["Image Index"] for row in template_rows()])
                          | CELL_VALUES, max_size=8))
    return draw(encoded("\n".join(names)))


@st.composite
def table_cases(draw, targets=("download", "split", "stats")):
    """A :class:`Case` of a fuzzed label table: the local source's (download, stopping or
    skipping bad rows; with a fuzzed box table or split list at times) or the dataset's
    (split, stats)."""
    target = draw(st.sampled_from(targets))
    files = {(SOURCE_TABLE if target == "download" else DATASET_TABLE).as_posix():
             draw(table_files())}
    if target == "download" and draw(st.booleans()):
        files[(SOURCE / BOX_TABLE).as_posix()] = draw(box_table_files())
    if target == "download" and draw(st.booleans()):
        files[(SOURCE / TEST_LIST).as_posix()] = draw(image_list_files())
    if target == "download" and draw(st.booleans()):
        params = template_params()
        params["download"]["on_invalid"] = "skip"
        files[PARAMS_FILE.as_posix()] = yaml.safe_dump(params, sort_keys=False).encode()
    return Case("table", (target,), files)


# --- image files -------------------------------------------------------------------------

IMAGE_MODES = ("L", "I;16", "RGB", "RGBA", "P", "LA", "1")
OTHER_FORMATS = ("JPEG", "GIF", "BMP", "TIFF", "WEBP")


def png_chunks(data):
    """[(type, payload)] of PNG bytes, as far as they parse; [] if not a PNG."""
    chunks, offset = [], 8
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return chunks
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if offset + 12 + length > len(data):
            break
        chunks.append((kind, data[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def png_from_chunks(chunks):
    """PNG bytes of [(type, payload)], every checksum correct."""
    body = b"".join(struct.pack(">I", len(payload)) + kind + payload
                    + struct.pack(">I", zlib.crc32(kind + payload)) for kind, payload in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


@st.composite
def pictures(draw):
    """Bytes of a small picture: any PNG mode and size from 1x1, or another format."""
    sides = st.one_of(st.integers(8, 48), st.integers(8, 48), st.integers(1, 7))
    width, height = draw(sides), draw(sides)
    mode = draw(st.sampled_from(IMAGE_MODES))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    picture = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16)) \
        if mode == "I;16" else \
        Image.frombytes("L", (width, height), rng.bytes(width * height)).convert(
            "RGB" if mode in ("RGB", "RGBA") else "L").convert(mode)
    image_format = draw(st.sampled_from(["PNG"] * 5 + list(OTHER_FORMATS)))
    buffer = io.BytesIO()
    if image_format != "PNG":
        picture = picture.convert("RGB" if image_format in ("JPEG", "WEBP") else "L")
    picture.save(buffer, format=image_format, **({"optimize": draw(st.booleans())}
                                                 if image_format == "PNG" else {}))
    return buffer.getvalue()


@st.composite
def damaged(draw, data):
    """``data`` with one kind of damage, or none."""
    damage = draw(st.sampled_from(["none", "none", "cut", "cut", "flip", "flip and fix checksums",
                                   "flip and fix checksums", "insert chunk", "drop chunk",
                                   "declared size", "append", "random", "empty"]))
    chunks = png_chunks(data)
    if damage == "cut":
        return data[:draw(st.integers(0, len(data)))]
    if damage in ("flip", "flip and fix checksums"):
        flipped = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            flipped[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        flipped = bytes(flipped)
        return png_from_chunks(png_chunks(flipped)) if damage.endswith("checksums") and \
            png_chunks(flipped) else flipped
    if damage == "insert chunk" and chunks:
        kind = draw(st.sampled_from([b"IDAT", b"IEND", b"PLTE", b"tEXt", b"zTXt", b"ABCD",
                                     b"abcd", b"iCCP", b"IHDR"]))
        chunks.insert(draw(st.integers(0, len(chunks))), (kind, draw(st.binary(max_size=40))))
        return png_from_chunks(chunks)
    if damage == "drop chunk" and chunks:
        del chunks[draw(st.integers(0, len(chunks) - 1))]
        return png_from_chunks(chunks)
    if damage == "declared size" and chunks and chunks[0][0] == b"IHDR":
        width = draw(st.sampled_from([0, 1, 7, 8, 65535, 100_000, 1_000_001, 2 ** 31 - 1,
                                      2 ** 32 - 1]))
        height = draw(st.sampled_from([0, 1, 8, 8000, 65535, 100_000, 2 ** 31 - 1]))
        chunks[0] = (b"IHDR", struct.pack(">II", width, height) + chunks[0][1][8:])
        return png_from_chunks(chunks)
    if damage == "append":
        return data + draw(st.binary(min_size=1, max_size=40))
    if damage == "random":
        return draw(st.binary(max_size=300))
    if damage == "empty":
        return b""
    return data


@st.composite
def image_files(draw):
    """Bytes of a fuzzed image file: :func:`pictures` with :func:`damaged` applied."""
    return draw(damaged(draw(pictures())))


@st.composite
def image_cases(draw, template_train_images, targets=("download", "stats", "predict")):
    """A :class:`Case` of a fuzzed image: one of the local source's (download), one of the
    train split's (stats, which reads those), or the one image given to predict."""
    target = draw(st.sampled_from(targets))
    if target == "predict":  # a previous --out file, which a failed run must leave as it was
        return Case("image", ("predict",), {PREDICT_IMAGE.as_posix(): draw(image_files()),
                                            PREDICT_OUT.as_posix(): b"image\nearlier.png\n"})
    names = template_train_images if target == "stats" else \
        [row["Image Index"] for row in template_rows()]
    name = draw(st.sampled_from(names))
    return Case("image", (target,), {(SOURCE / IMAGES / name).as_posix(): draw(image_files())})


def decode_agreement(data, folder):
    """What breaks "a PNG the download stage accepts, training decodes": a list of problems.

    Writes ``data`` into ``folder`` and, if :func:`chestxray.nih.image_files.open_image` accepts it
    as a PNG, decodes it as training does (``load_pixels``, TensorFlow) and as the stats stage
    does (``read_gray``).
    """
    from chestxray.data.images import read_gray
    from chestxray.data.preprocessing import load_pixels
    from chestxray.nih.image_files import ImageError, open_image
    path = Path(folder) / "fuzzed.png"
    path.write_bytes(data)
    try:
        with open_image(path, formats=("PNG",)):
            pass
    except ImageError:
        return []
    problems = []
    for name, decode in (("load_pixels", lambda: load_pixels(str(path), 32)),
                         ("read_gray", lambda: read_gray(path, 32))):
        try:
            decode()
        except Exception as error:  # any failure is the finding
            problems.append(f"accepted, but {name} failed: {type(error).__name__}: "
                            f"{' '.join(str(error).split())[:200]}")
    return problems
