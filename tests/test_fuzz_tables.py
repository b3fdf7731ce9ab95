"""Fuzzed label tables (0 bytes, encodings, huge, non-integer and empty Patient IDs,
duplicates, missing, extra and misspelt columns, only 'No Finding', one class, paths as
Image Index) through the download (local source, stop and skip), split and stats stages: each
run succeeds, or stops with one `error:` line, and leaves every file as it was
(tests/fuzz_harness.py)."""
import pytest
from hypothesis import given, settings

from fuzz_harness import CI_SETTINGS, make_template, run_case, table_cases


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(template working folder, folder for the cases' copies)."""
    return make_template(tmp_path_factory.mktemp("template")), tmp_path_factory.mktemp("cases")


@settings(CI_SETTINGS, max_examples=250)
@given(case=table_cases())
def test_fuzzed_label_tables_stop_with_one_line_and_keep_every_file(folders, case):
    outcome, problems = run_case(case, *folders)
    assert not problems, f"{case.command}: {problems}\n{outcome.stderr[-3000:]}"
