"""Fuzzed label tables (0 bytes, encodings, huge, non-integer and empty Patient IDs,
duplicates, missing, extra and misspelt columns, only 'No Finding', one class, paths as
Image Index) through the download (local source, stop and skip), split and stats stages: each
run succeeds, or stops with one `error:` line, and leaves every file as it was
(tests/fuzz_harness.py)."""
from hypothesis import given, settings

from fuzz_harness import CI_SETTINGS, run_case, table_cases


@settings(CI_SETTINGS, max_examples=250)
@given(case=table_cases())
def test_fuzzed_label_tables_stop_with_one_line_and_keep_every_file(fuzz_folders, case):
    outcome, problems = run_case(case, *fuzz_folders)
    assert not problems, f"{case.command}: {problems}\n{outcome.stderr[-3000:]}"
