"""The layout's one rule: a module imports its own layer or lower ones, never a higher one.

Layers, bottom to top (README, Architecture): L0 pure domain (``models``, ``app.settings``),
L1 offline work (``models.offline``, ``models.simulator``), L2 plumbing (``app.kafka``,
``app.internals``, ``app.serving``, ``monitoring``, ``tables``), L3 agents, L4 the top
(``app.web``, ``app.commands``, the ``app`` package that ``faust -A app`` reads). Every
import counts, at module level or in a function, ``TYPE_CHECKING`` ones too: a lazy import
of a higher layer is still a dependency on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "agents", "tables", "models", "monitoring")

#: Package (or module) -> layer; the longest matching name wins.
LAYERS: dict[str, int] = {
    "models": 0,
    "app.settings": 0,
    "models.offline": 1,
    "models.simulator": 1,
    "app.kafka": 2,
    "app.internals": 2,
    "app.serving": 2,
    "monitoring": 2,
    "tables": 2,
    "agents": 3,
    "app.web": 4,
    "app.commands": 4,
    "app": 4,
}
#: Names that are the module itself only, not a prefix: a new ``app/x.py`` must be placed.
EXACT = {"app"}


def layer_of(module: str) -> int | None:
    """Return the layer of a dotted module name, or None if no entry covers it."""
    best: tuple[int, int] | None = None
    for name, layer in LAYERS.items():
        covers = module == name or (name not in EXACT and module.startswith(name + "."))
        if covers and (best is None or len(name) > best[0]):
            best = (len(name), layer)
    return None if best is None else best[1]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the five source packages (tests and bench are not layered)."""
    return {
        module_name(path, root): path
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }


def imported(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Yield each project module a module imports (anywhere in its body)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield sub if sub in known else source


def upward_imports(root: Path) -> list[str]:
    modules = project_modules(root)
    known = set(modules)
    found = []
    for module, path in modules.items():
        own = layer_of(module)
        if own is None:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in sorted(set(imported(tree, module, path.name == "__init__.py", known))):
            if target.split(".")[0] not in PACKAGES:
                continue
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                found.append(f"{module} (L{own}) imports {target} (L{theirs})")
    return found


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(ROOT) == []


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in project_modules(ROOT) if layer_of(m) is None]
    assert unplaced == [], f"add these to LAYERS (and the README's layers): {unplaced}"


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """A table module importing an agent, in a function, is reported with both layers."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "agents" / "pipeline.py").write_text("X = 1\n")
    (tmp_path / "tables" / "accounts.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from app import commands\n"
        "def f() -> None:\n    from agents.pipeline import X\n"
    )
    (tmp_path / "app" / "commands.py").write_text("")
    assert upward_imports(tmp_path) == [
        "tables.accounts (L2) imports agents.pipeline (L3)",
        "tables.accounts (L2) imports app.commands (L4)",
    ]


def test_a_module_outside_the_table_has_no_layer() -> None:
    assert layer_of("app.something_new") is None
    assert layer_of("app.kafka.sender") == 2
    assert layer_of("models.aml.engine") == 0
    assert layer_of("app") == 4
