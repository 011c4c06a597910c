"""The package's shape: every module in a layer, imports only downwards, no import circle.

Read from the source, so lazy imports inside functions count too. The layers
are the data flow of ``docs/architecture.md``; a module may import modules of
its own layer and of the layers before it, never one after it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fitlab"

# Lowest first. A name is a module (fitlab.files) or a subpackage (fitlab.data).
LAYERS: list[tuple[str, ...]] = [
    ("fitlab.config", "fitlab.files", "fitlab._private", "fitlab.machine", "fitlab.quiet"),
    ("fitlab.data",),
    ("fitlab.pipelines",),
    ("fitlab.augment", "fitlab.models", "fitlab.optim", "fitlab.recipes"),
    ("fitlab.engine",),
    ("fitlab.loops", "fitlab.callbacks", "fitlab.plots", "fitlab.evaluate"),
    ("fitlab.compat",),
    ("fitlab.tutorial", "fitlab.cluster", "fitlab.exercises", "fitlab.bench"),
    ("fitlab.cli", "fitlab.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str) -> set[str]:
    """Every fitlab module ``path`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    known = modules()
    # `from fitlab import config` imports fitlab.config, not the package's public names.
    return {m for m in found if m in known and m not in (name, "fitlab")}


def layer_of(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(name == top or name.startswith(top + ".") for top in layer):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS and docs/architecture.md")


def graph() -> dict[str, set[str]]:
    # The package's own __init__ maps public names to modules as strings (lazily); it
    # sits above every layer and is left out.
    return {n: imports_of(p, n) for n, p in modules().items() if n != "fitlab"}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_has_a_layer():
    for name in graph():
        layer_of(name)


def test_no_module_imports_a_later_layer():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(name)
    ]
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_there_is_no_import_circle():
    assert find_cycle(graph()) is None, f"import circle: {' -> '.join(find_cycle(graph()))}"


def test_the_checks_catch_a_circle_and_an_upward_import():
    # The detector itself, on a made-up graph: it must not pass everything.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("fitlab.data.csvrows") < layer_of("fitlab.engine.adapters")


def test_lazy_imports_are_seen(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from fitlab.tutorial import train_tutorial\n")
    assert "fitlab.tutorial" in imports_of(source, "fitlab.data.fake")


@pytest.mark.parametrize("name", ["fitlab.config", "fitlab.cli"])
def test_the_command_line_starts_without_keras(name):
    # `python -m fitlab --help` must answer at once: cli and config never import Keras.
    assert not {"keras", "tensorflow"} & _third_party(modules()[name])


def _third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names
