"""The package's folders tell its architecture, and no two modules import each other.

An import cycle, even one hidden in a function, ties two concerns together; the engine's row-hash helpers
live in `engine/schema.py` so that `digest` builds on `schema` and never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
PACKAGE = PLUGINS / "campus_sync"
CONCERNS = ("hierarchy", "engine", "orchestration", "tools", "web", "cli", "bench", "demo", "edfi")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PLUGINS).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("campus_sync"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("campus_sync"))
    # a sub-module may use what its own package defines (cli's subcommands raise cli.CliError)
    return {m for m in found if m in known and m != name and not name.startswith(m + ".")}


def test_each_concern_has_its_sub_package():
    for concern in CONCERNS:
        assert (PACKAGE / concern / "__init__.py").is_file(), f"campus_sync/{concern}/ is missing"
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "config.py", "db.py", "paths.py"], flat


def test_no_import_cycles():
    known = _modules()
    graph = {name: _imports(path, name, known) for name, path in known.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles (at load or inside functions):\n" + "\n".join(" -> ".join(c) for c in cycles)
