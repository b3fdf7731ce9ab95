"""GitHub Actions workflows: zizmor (pinned in requirements-test.in) finds nothing in them.

zizmor audits workflows for template injection, actions not pinned to a commit, checkouts that
leave the token in .git/config, and more (https://docs.zizmor.sh/audits/). It runs offline, so
the audits that ask GitHub (impostor commits, known-vulnerable actions) are not part of it.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BAD_WORKFLOW = """\
name: bad
on: pull_request
permissions:
  contents: read
jobs:
  bad:
    name: bad
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def zizmor_executable():
    """The zizmor beside this interpreter (the test venv), else on PATH.

    Absent, the test skips with the install command, except in CI, where it fails: CI installs
    requirements-test.txt, so a missing zizmor there is a broken setup, not a choice.
    """
    beside = Path(sys.executable).with_name("zizmor")
    found = str(beside) if beside.exists() else shutil.which("zizmor")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("zizmor is not installed: CI must install requirements-test.txt")
        pytest.skip("zizmor is needed to audit the workflows: "
                    "pip install --require-hashes -r requirements-test.txt")
    return found


def audit(folder, cwd):
    """zizmor's findings (JSON) on the workflows in folder, and the finished process."""
    proc = subprocess.run(
        [zizmor_executable(), "--offline", "--format", "json", str(folder)],
        cwd=cwd, capture_output=True, text=True, timeout=300)
    try:
        findings = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"zizmor printed no JSON (exit {proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}")
    return findings, proc


def describe(finding):
    """One line a person can act on: file:line, severity, audit, what, and the text found."""
    lines = []
    for location in finding["locations"]:
        if location["symbolic"]["kind"] != "Primary":
            continue
        path = location["symbolic"]["key"]["Local"]["verbatim_path"]
        row = location["concrete"]["location"]["start_point"]["row"] + 1
        kind = location["symbolic"]["feature_kind"]
        if isinstance(kind, dict) and "Subfeature" in kind:
            feature = str(next(iter(kind["Subfeature"]["fragment"].values())))
        else:
            feature = location["concrete"]["feature"].strip().splitlines()[0]
        lines.append(f"{path}:{row}: {finding['determinations']['severity']} "
                     f"[{finding['ident']}] {finding['desc']}: {feature}")
    return "\n".join(lines) or f"[{finding['ident']}] {finding['desc']}"


def test_workflows_have_no_zizmor_findings():
    findings, proc = audit(Path(".github") / "workflows", ROOT)
    if findings:
        pytest.fail(
            f"zizmor found {len(findings)} problem(s) in .github/workflows/ "
            "(`zizmor --offline .github/workflows/` shows each with its fix):\n"
            + "\n".join(describe(finding) for finding in findings), pytrace=False)
    assert proc.returncode == 0, proc.stderr


def test_zizmor_reports_an_unsafe_workflow(tmp_path):
    """The audit above is live: the same call flags an injected expression and a tag pin."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(BAD_WORKFLOW)
    findings, proc = audit(workflows, tmp_path)
    assert {"template-injection", "unpinned-uses", "artipacked"} <= {
        finding["ident"] for finding in findings}, proc.stdout
    assert proc.returncode != 0
