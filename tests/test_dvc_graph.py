"""The dependency graph tells the truth: every file a stage runs is one of its deps, every
output is declared where chestxray.core.paths names it, and the package imports no cycle."""
import ast
import shlex
from pathlib import Path

import pytest
import yaml

from chestxray.core import paths

from conftest import REPO

PACKAGE = "chestxray"
SOURCE_ROOT = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(module):
    """The source file of a ``chestxray`` module or package, or None if there is none."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path):
    """``chestxray`` modules that the file at ``path`` imports anywhere (functions included).

    ``from chestxray.x import y`` counts ``chestxray.x`` and, when ``y`` is a
    submodule, ``chestxray.x.y``.
    """
    package = ".".join(path.relative_to(SOURCE_ROOT).with_suffix("").parts[:-1]) \
        if path.is_relative_to(SOURCE_ROOT) else ""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parent, base]))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found
            if name.split(".")[0] == PACKAGE and module_file(name) is not None}


def executed_files(script):
    """Every file of the package that running ``script`` executes, ``script`` included.

    Follows imports transitively and adds each imported module's parent
    packages' ``__init__.py``, which Python runs first.
    """
    files, queue = {script}, [script]
    while queue:
        for module in imported_modules(queue.pop()):
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                path = module_file(".".join(parts[:depth]))
                if path is not None and path not in files:
                    files.add(path)
                    queue.append(path)
    return files


def stage_script(stage):
    """The stage script a dvc.yaml stage runs (``python stages/x.py``)."""
    command = shlex.split(STAGES[stage]["cmd"])
    assert command[0] == "python" and command[1].startswith("stages/"), STAGES[stage]["cmd"]
    return REPO / command[1]


def uncovered(files, deps):
    """The files (repository-relative str, sorted) that no dep covers, a dep being
    either the file itself or a folder above it."""
    dep_paths = [Path(dep) for dep in deps]
    relative = (path.relative_to(REPO) for path in files)
    return sorted(str(path) for path in relative
                  if not any(path == dep or dep in path.parents for dep in dep_paths))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_file_a_stage_executes_is_one_of_its_deps(stage):
    missing = uncovered(executed_files(stage_script(stage)), STAGES[stage]["deps"])
    assert not missing, f"stage {stage!r} runs {missing}, which its dvc.yaml deps do not cover"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_check_fails_when_any_code_dep_is_removed(stage):
    """Each code dep is needed: without it the coverage check names a file."""
    files, deps = executed_files(stage_script(stage)), STAGES[stage]["deps"]
    code_deps = [dep for dep in deps if dep.startswith(("src/", "stages/"))]
    assert code_deps
    for removed in code_deps:
        assert uncovered(files, [dep for dep in deps if dep != removed]), \
            f"stage {stage!r}: dep {removed} covers nothing the stage runs"


@pytest.mark.parametrize("stage", ["train", "evaluate", "gradcam"])
def test_editing_a_download_source_retrains_nothing(stage):
    acquire = REPO / "src" / PACKAGE / "acquire"
    assert not any(acquire in path.parents for path in executed_files(stage_script(stage)))
    assert not any(dep.startswith("src/chestxray/acquire") for dep in STAGES[stage]["deps"])


def declared(stage, section):
    """Paths a dvc.yaml stage lists under ``outs``, ``metrics`` or ``plots``."""
    entries = STAGES[stage].get(section, [])
    return sorted(Path(next(iter(entry)) if isinstance(entry, dict) else entry)
                  for entry in entries)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_yaml_declares_the_outputs_paths_names(stage):
    named = paths.STAGE_OUTPUTS[stage]
    for section in ("outs", "metrics", "plots"):
        assert declared(stage, section) == sorted(named.get(section, [])), (stage, section)


def test_every_stage_has_its_outputs_named():
    assert set(paths.STAGE_OUTPUTS) == set(STAGES)


def test_no_stage_script_or_cli_spells_an_output_path():
    for script in [*REPO.glob("stages/*.py"), SOURCE_ROOT / PACKAGE / "__main__.py"]:
        text = script.read_text()
        assert '"outputs/' not in text and '"metrics/' not in text, script


def package_modules():
    """{module name: file} of every module of the package."""
    return {".".join(path.relative_to(SOURCE_ROOT).with_suffix("").parts).removesuffix(
        ".__init__"): path for path in (SOURCE_ROOT / PACKAGE).rglob("*.py")}


def test_the_package_never_imports_a_stage_script():
    for path in package_modules().values():
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        names |= {node.module or "" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)}
        assert not any(name.split(".")[0] == "stages" for name in names), path


def test_the_package_has_no_circular_imports():
    modules = package_modules()
    graph = {name: {imported for imported in imported_modules(path)
                    if imported in modules and imported != name
                    and not name.startswith(imported + ".")}
             for name, path in modules.items()}
    visiting, done = [], set()

    def visit(name):
        if name in done:
            return
        cycle = visiting[visiting.index(name):] + [name] if name in visiting else []
        assert not cycle, f"import cycle: {' -> '.join(cycle)}"
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
