"""Import layers of the package, read from the source with `ast` (nothing is imported).

Bottom: errors, config, io, contract, progress, wording, plots and the event tables (events, snapshot,
features.timeline, features.tables): they import only each other. Stage modules (everything else but
`pipeline.run.*` and the CLI) never import a runner or the CLI; runners never import the CLI. The
module-level imports (those that run when a module is imported) have no circle. The ingest stage calls its
notes, never the other way round: `pipeline.ingest_notes` does not import `pipeline.ingest`, not even inside a function.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"

BOTTOM = {
    "pipeline.errors",
    "pipeline.config",
    "pipeline.io",
    "pipeline.contract",
    "pipeline.progress",
    "pipeline.wording",
    "pipeline.plots",
    "pipeline.events",
    "pipeline.snapshot",
    "pipeline.features.timeline",
    "pipeline.features.tables",
}
CLI = {"pipeline.cli", "pipeline.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _target(name: str) -> str | None:
    """The package module `name` refers to (`pipeline.a.b.func` -> `pipeline.a.b`), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(tree: ast.AST, module: str) -> list[tuple[str, bool]]:
    """(imported package module, runs at import time) for every import in `tree`: imports inside a
    function or an `if TYPE_CHECKING:` block do not run when the module is imported."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            inner = inner or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            elif isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            else:
                names = []
            for name in names:
                target = _target(name) if name.startswith("pipeline") else None
                if target and target != module:
                    found.append((target, not inner))
            visit(child, inner)

    visit(tree, False)
    return found


IMPORTS = {module: _imports(ast.parse(path.read_text(encoding="utf-8")), module) for module, path in MODULES.items()}


def imported(module: str, *, at_import_time_only: bool = False) -> set[str]:
    return {target for target, runs in IMPORTS[module] if runs or not at_import_time_only}


def is_runner(module: str) -> bool:
    return module == "pipeline.run" or module.startswith("pipeline.run.")


def test_the_reader_finds_module_level_deferred_and_from_package_imports():
    assert "pipeline.tracking" in imported("pipeline.run.train", at_import_time_only=True)
    assert "pipeline.train" in imported("pipeline.tracking", at_import_time_only=True)
    assert "pipeline.plots" in imported("pipeline.run.train")  # `from pipeline import plots`
    assert "pipeline.run.train" in imported("pipeline.cli")
    assert "pipeline.run.train" not in imported("pipeline.cli", at_import_time_only=True)  # inside a command
    assert "pipeline.train" not in imported("pipeline.dask_engine", at_import_time_only=True)  # TYPE_CHECKING
    assert BOTTOM <= set(MODULES)


@pytest.mark.parametrize("module", sorted(BOTTOM))
def test_bottom_modules_import_only_bottom_modules(module):
    assert imported(module) <= BOTTOM, f"{module} imports {sorted(imported(module) - BOTTOM)}"


def test_stage_modules_never_import_a_runner_or_the_cli():
    wrong = {
        module: sorted(target for target in imported(module) if is_runner(target) or target in CLI)
        for module in MODULES
        if not is_runner(module) and module not in CLI
    }
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_runners_never_import_the_cli():
    wrong = {module: sorted(imported(module) & CLI) for module in MODULES if is_runner(module)}
    assert {module: targets for module, targets in wrong.items() if targets} == {}


def test_the_ingest_notes_never_import_the_ingest_stage():
    assert "pipeline.ingest" not in imported("pipeline.ingest_notes")


def test_module_level_imports_have_no_circle():
    graph = {module: imported(module, at_import_time_only=True) for module in MODULES}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(reversed(error.args[1]))}")  # graphlib lists them against the import direction
