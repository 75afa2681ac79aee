"""How the package is put together, checked from the source: imports point one way (no cycles, counting
imports inside functions and under TYPE_CHECKING too), only the CLI imports its commands, no module imports
another's `_private` names, and nothing outside models/ probes a model with hasattr (models/contract.py declares
what they can do)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"models": "stylemix.models", "training": "stylemix.training", "inference": "stylemix.inference"}


def _modules() -> dict[str, tuple[Path, bool]]:
    """{dotted name: (file, is a package __init__)} of every module of the three packages."""
    out = {}
    for folder, pkg in PACKAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = [p for p in f.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([pkg, *parts])] = (f, f.name == "__init__.py")
    return out


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) of every import statement of a module, resolved to dotted names."""
    base = name if is_pkg else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                mod = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
                top = mod.split(".")[0]
                mod = PACKAGES[top] + mod[len(top):] if top in PACKAGES else mod
            names = [a.name for a in node.names]
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in known]  # `from . import grid`: the submodule
            found += [(s, []) for s in subs]
            if len(subs) < len(names):
                found.append((mod, [n for n in names if f"{mod}.{n}" not in known]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


def test_imports_have_no_cycles():
    mods = _modules()
    graph = {m: {t for t, _ in _imports(m, f, pkg, set(mods)) if t in mods and t != m} for m, (f, pkg) in mods.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, "import cycle: " + " -> ".join(path[path.index(t):] + [t])  # t is on the path
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_module_imports_another_modules_private_names():
    mods = _modules()
    bad = [f"{m}: from {t} import {n}" for m, (f, pkg) in mods.items() for t, names in _imports(m, f, pkg, set(mods))
           for n in names if n.startswith("_") and not n.startswith("__") and t != m]
    assert not bad, bad


def test_nothing_outside_models_asks_a_model_what_it_can_do_with_hasattr():
    files = [*(ROOT / "inference").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    bad = [str(f.relative_to(ROOT)) for f in files if "hasattr(" in f.read_text()]
    assert not bad, f"use model.capabilities (models/contract.py) instead of hasattr in {bad}"


def test_models_import_neither_training_nor_inference():
    mods = _modules()
    bad = [f"{m} imports {t}" for m, (f, pkg) in mods.items() if m.startswith("stylemix.models")
           for t, _ in _imports(m, f, pkg, set(mods)) if t.startswith(("stylemix.training", "stylemix.inference"))]
    assert not bad, bad


def test_every_module_holds_one_idea_in_at_most_500_lines():
    sizes = {str(f.relative_to(ROOT)): len(f.read_text().splitlines()) for f, _ in _modules().values()}
    assert len(sizes) > 50 and not {f: n for f, n in sizes.items() if n > 500}


def test_only_the_cli_imports_its_commands():
    """Commands use the library, never the other way round: outside inference/commands/ and the CLI entry
    (inference/cli.py) no module imports from stylemix.inference.commands."""
    mods = _modules()
    commands, cli = "stylemix.inference.commands", "stylemix.inference.cli"

    def is_command(m: str) -> bool:
        return m == commands or m.startswith(commands + ".")

    bad = [f"{m} imports {t}" for m, (f, pkg) in mods.items() if m != cli and not is_command(m)
           for t, _ in _imports(m, f, pkg, set(mods)) if is_command(t)]
    assert not bad, f"move what these need out of inference/commands/ into a library module: {bad}"
