"""Fuzzed params.yaml (types, ranges, extra, misspelt and missing keys, YAML shapes,
encodings) through the split, stats and download stages: each run succeeds, or stops with
one `error:` line, and leaves every file as it was (the property of tests/fuzz_harness.py)."""
from hypothesis import given, settings

from fuzz_harness import CI_SETTINGS, params_cases, run_case


@settings(CI_SETTINGS, max_examples=250)
@given(case=params_cases())
def test_fuzzed_params_stop_with_one_line_and_keep_every_file(fuzz_folders, case):
    outcome, problems = run_case(case, *fuzz_folders)
    assert not problems, f"{case.command}: {problems}\n{outcome.stderr[-3000:]}"
