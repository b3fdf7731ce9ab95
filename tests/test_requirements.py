"""The hash locks agree with the hand-edited pins, with each other, and with how they are installed.

requirements.in and requirements-test.in are edited by hand; requirements.txt and
requirements-test.txt are compiled from them by `bash .ci/lock` (docs/team-workflow.md,
"Dependencies"). These checks need no network: they catch a pin edited without refreshing the
locks, a lock edited by hand, and a setup command that installs without the hashes.
"""
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"requirements.in": "requirements.txt", "requirements-test.in": "requirements-test.txt"}
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+?)(?: ; (.+?))? \\$")


def lock_entries(name):
    """{(package, marker): version} of a lock, and the packages whose entry has no hash."""
    entries, unhashed = {}, []
    lines = (ROOT / name).read_text().splitlines()
    for number, line in enumerate(lines):
        if not line or line[0] in "# ":
            continue
        match = ENTRY.match(line)
        assert match, f"{name}:{number + 1}: not a hashed `package==version` entry: {line}"
        package = canonicalize_name(match[1])
        entries[package, match[3] or ""] = match[2]
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if not following.strip().startswith("--hash=sha256:"):
            unhashed.append(package)
    return entries, unhashed


def hand_pins(name):
    """{package: version} of the `package==version` lines of a hand-edited .in file."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{name}: pin {line} exactly (package==version)"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


@pytest.mark.parametrize("source", sorted(LOCKS))
def test_every_hand_pin_is_in_its_lock(source):
    entries, unhashed = lock_entries(LOCKS[source])
    locked = {(package, version) for (package, _), version in entries.items()}
    stale = [f"{package}=={version}" for package, version in hand_pins(source).items()
             if (package, version) not in locked]
    assert not stale, (f"{source} pins {', '.join(stale)} but {LOCKS[source]} does not: "
                       "refresh the locks with `bash .ci/lock`")
    assert not unhashed, f"{LOCKS[source]}: entries without a hash: {unhashed}"


def test_the_test_lock_holds_the_runtime_lock():
    """Same versions in both: the tests run what the pipeline runs."""
    runtime, _ = lock_entries("requirements.txt")
    test, _ = lock_entries("requirements-test.txt")
    differ = {key: (version, test.get(key)) for key, version in runtime.items()
              if test.get(key) != version}
    assert not differ, f"requirements-test.txt differs from requirements.txt: {differ}"
    assert "-r requirements.in" in (ROOT / "requirements-test.in").read_text()


def test_the_project_has_no_dependencies_of_its_own():
    """`pip install --no-deps -e .` after the lock skips nothing: the lock holds them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not project.get("dependencies") and not project.get("optional-dependencies")


def test_setup_commands_install_the_locks_with_hashes():
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text()
    install = "pip install --require-hashes -r {} && pip install --no-deps --no-build-isolation -e ."
    assert install.format("requirements.txt") + " && dvc repro --pull" in readme
    test_command = install.format("requirements-test.txt") + " && python -m pytest"
    assert test_command in readme
    # CI installs the same lock, with hashes, through uv (faster; .ci/run says by how much).
    assert re.search(rf"^uv {re.escape(install.format('requirements-test.txt'))}$", ci_run,
                     re.MULTILINE)
    assert ci_run.rstrip().endswith("python -m pytest")
