"""Fuzzed params.yaml (types, ranges, extra, misspelt and missing keys, YAML shapes,
encodings) through the split, stats and download stages: each run succeeds, or stops with
one `error:` line, and leaves every file as it was (the property of tests/fuzz_harness.py)."""
import pytest
from hypothesis import given, settings

from fuzz_harness import CI_SETTINGS, make_template, params_cases, run_case


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(template working folder, folder for the cases' copies)."""
    return make_template(tmp_path_factory.mktemp("template")), tmp_path_factory.mktemp("cases")


@settings(CI_SETTINGS, max_examples=250)
@given(case=params_cases())
def test_fuzzed_params_stop_with_one_line_and_keep_every_file(folders, case):
    outcome, problems = run_case(case, *folders)
    assert not problems, f"{case.command}: {problems}\n{outcome.stderr[-3000:]}"
