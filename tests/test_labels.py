"""Parsing NIH 'Finding Labels' strings."""
import numpy as np
import pytest

from chestxray.nih.labels import FINDINGS, format_findings, parse_findings


def test_parse_multi_label_rows_in_official_order():
    matrix = parse_findings(["Cardiomegaly|Effusion", "No Finding", "Hernia"])
    assert matrix.shape == (3, 14) and matrix.dtype == np.float32
    assert matrix[0, FINDINGS.index("Cardiomegaly")] == 1
    assert matrix[0, FINDINGS.index("Effusion")] == 1
    assert matrix[0].sum() == 2 and matrix[1].sum() == 0
    assert matrix[2, FINDINGS.index("Hernia")] == 1


@pytest.mark.parametrize("bad, message", [
    (["No Finding", "Pneumonia|Covid"], "unknown finding 'Covid' in row 1"),
    (["Mass", ""], "empty 'Finding Labels' in row 1"),
    (["Mass", None], "empty 'Finding Labels' in row 1"),
])
def test_bad_findings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_findings(bad)


def test_format_is_the_inverse_of_parse():
    rows = ["Atelectasis|Pneumothorax", "No Finding", "Edema"]
    assert [format_findings(r) for r in parse_findings(rows)] == rows
