"""The layers contract: which microspeech package may import which (run by `make lint`).

    python tests/check_layers.py [PACKAGE_DIR]     (default: src/microspeech)

Every import counts, at module level, inside functions and under TYPE_CHECKING alike. A
package is a folder under microspeech/ (a top-level module counts as its own package). The
contract (STYLE.md, "Layers"):
- no cycle between packages;
- leaves (files, paths, labels, config, progress, mltk_wheel, version, checks, lazy, stopping) import
  only leaves;
- frontend imports nothing above audio;
- tflite (the artifact) knows nothing of data, models, training, evaluation or detection;
- detection (the firmware loop) needs only frontend, tflite and the leaves;
- data knows no model specs, training or evaluation;
- the library never imports the CLI (only `demo`, itself a command, may) nor `testing`.
Exit status 1 with one line per violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LEAVES = frozenset(
    {"files", "paths", "labels", "config", "progress", "mltk_wheel", "version", "checks", "lazy", "stopping"}
)
UPPER = frozenset({"cli", "demo", "microspeech"})
# package -> the packages it may import (None: anything the no-cycle rule allows).
ALLOWED: dict[str, frozenset[str] | None] = {
    **{leaf: LEAVES for leaf in LEAVES},
    "audio": LEAVES,
    "frontend": LEAVES | {"audio"},
    "tflite": LEAVES | {"audio", "frontend"},
    "detection": LEAVES | {"audio", "frontend", "tflite"},
    "data": LEAVES | {"audio", "frontend"},
    "models": None,
    "evaluation": None,
    "training": None,
    "cli": None,
    "demo": None,
    "microspeech": None,
    "testing": None,
}


def package_of(module: str) -> str | None:
    """The package a dotted module name belongs to (None outside microspeech)."""
    parts = module.split(".")
    if parts[0] != "microspeech":
        return None
    return parts[1] if len(parts) > 1 else "microspeech"


def imports_of(root: Path) -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the importing modules (file:line)."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).with_suffix("")
        module_parts = list(relative.parts)
        is_package = module_parts[-1] == "__init__"
        if is_package:
            module_parts = module_parts[:-1]
        module = ".".join(module_parts)
        source = package_of(module) or "microspeech"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module_parts if is_package else module_parts[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    targets = [".".join([*base, *([node.module] if node.module else [])])]
                else:
                    targets = [node.module or ""]
                # `from microspeech import training` imports the package `training`;
                # `from microspeech import __version__` a name of the root package.
                if targets == ["microspeech"]:
                    targets = [
                        f"microspeech.{alias.name}"
                        if (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()
                        else "microspeech"
                        for alias in node.names
                    ]
            for target in targets:
                imported = package_of(target)
                if imported and imported != source:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    graph.setdefault(source, {}).setdefault(imported, []).append(where)
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Every strongly connected group of two or more packages (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def violations(root: Path) -> list[str]:
    """One line per broken rule, naming the importing file and line."""
    graph = imports_of(root)
    found = []
    for source, targets in sorted(graph.items()):
        allowed = ALLOWED.get(source)
        for target, places in sorted(targets.items()):
            if target == "cli" and source != "demo":
                found.append(f"{places[0]}: {source} imports the CLI ({target})")
            elif target == "testing" and source != "testing":
                found.append(f"{places[0]}: {source} imports the test helpers ({target})")
            elif allowed is not None and target not in allowed:
                found.append(
                    f"{places[0]}: {source} must not import {target} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'nothing'})"
                )
    for group in _cycles(graph):
        edges = [
            f"{a} -> {b} ({graph[a][b][0]})" for a in group for b in group if b in graph.get(a, {})
        ]
        found.append(f"import cycle between {', '.join(group)}: " + "; ".join(edges))
    unknown = sorted(set(graph) - set(ALLOWED))
    found += [f"package {name!r} has no entry in the layers contract (check_layers.py)" for name in unknown]
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "src" / "microspeech"
    problems = violations(root)
    for line in problems:
        print(line)
    if not problems:
        print(f"layers contract: {root} ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
