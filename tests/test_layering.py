"""Layering: the engine knows nothing of Qt or the app; light modules stay light; the CLI needs no Qt."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINE_FILES = sorted((REPO / "engine").rglob("*.py"))
QT_PACKAGES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy")


def _imports(tree: ast.AST, *, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import; relative imports keep their leading dots.

    Also counts importlib.import_module("x") and __import__("x") with a literal name. With
    top_level_only, imports inside functions and classes (run only when called) are skipped.
    """
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                ast.ClassDef)):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if (name in ("import_module", "__import__") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.append((node.lineno, node.args[0].value))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_scan_sees_every_kind_of_import():
    tree = ast.parse(
        "import PySide6.QtCore\n"
        "from PyQt6 import QtWidgets\n"
        "def f():\n"
        "    import shiboken6\n"
        "    importlib.import_module('PySide6')\n"
        "from .events import Finished\n"
    )
    names = [name for _, name in _imports(tree)]
    assert names == ["PySide6.QtCore", "PyQt6", "shiboken6", "PySide6", ".events"]
    assert [name for _, name in _imports(tree, top_level_only=True)] == ["PySide6.QtCore", "PyQt6", ".events"]


def test_engine_files_are_found():
    names = {p.relative_to(REPO / "engine").as_posix() for p in ENGINE_FILES}
    assert {"engine.py", "generation.py", "tokenizer.py", "detokenize.py", "paths.py"} <= names


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_engine_never_imports_qt_or_the_app(path):
    bad = [(line, name) for line, name in _imports(_parse(path))
           if _top(name) in QT_PACKAGES or _top(name) == "app"]
    assert bad == [], f"{path.relative_to(REPO)} imports {bad}"


@pytest.mark.parametrize("name", ["cli.py", "terminal.py"])
def test_terminal_front_end_never_imports_qt(name):
    path = REPO / "app" / name
    bad = [(line, mod) for line, mod in _imports(_parse(path)) if _top(mod) in QT_PACKAGES]
    assert bad == [], f"app/{name} imports {bad}"


def test_cli_module_level_imports_no_qt():
    top = _imports(_parse(REPO / "app" / "cli.py"), top_level_only=True)
    assert top, "the scan found no imports at all"
    assert [name for _, name in top if _top(name) in QT_PACKAGES] == []


def _modules_after_import(*modules: str) -> set[str]:
    code = (
        "import sys\n"
        f"for name in {list(modules)!r}:\n"
        "    __import__(name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert set(modules) <= loaded  # the probe really imported them
    return loaded


HEAVY = ("mlx", "mlx_lm", "transformers", "torch", *QT_PACKAGES)


@pytest.mark.parametrize("module", ["engine.model_folder", "engine.prompts", "engine.fit"])
def test_light_engine_modules_do_not_import_mlx(module):
    loaded = _modules_after_import(module)
    assert sorted(m for m in loaded if _top(m) in HEAVY) == []


def test_importing_the_cli_loads_neither_qt_nor_mlx():
    loaded = _modules_after_import("app.cli")
    assert sorted(m for m in loaded if _top(m) in HEAVY) == []
