"""The house drawn from its imports: imports run one way, from the command line down to the leaves.

Every import in `realtime/`, `benchmarks/` and `docs/` (module level or inside a function) is read from the source
with `ast`, and checked against the layers below: a module may import its own package and any lower layer,
never a higher layer or a sibling of its own layer, and the module graph has no circle. No module edits
`sys.path`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A package name covers its modules; a module of the package root that is not named here is a
# leaf (camera, geometry, images, frames, files, ...), at layer 0.
LAYERS = (
    ("realtime.face",),
    ("realtime.rig",),
    ("realtime.avatar",),
    ("realtime.deform", "realtime.render", "realtime.track"),
    ("realtime.builder",),
    ("realtime.painter",),
    ("realtime.pipeline",),
    ("realtime.stream",),
    ("realtime.app",),
    ("benchmarks", "docs"),
    ("realtime.app.cli",),  # the command line runs everything, the benchmarks included
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*(ROOT / "realtime").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "docs").rglob("*.py")]
    return {_module_name(p): p for p in files if "__pycache__" not in p.parts}


def _imports(name: str, path: Path, modules: set[str]) -> list[str]:
    """Every project module `name` imports (absolute names; `from x import y` counts y alone when y is a module
    of package x, x otherwise)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return [m for m in found if m.split(".")[0] in ("realtime", "benchmarks", "docs")]


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    graph = {}
    for name, path in sources.items():
        graph[name] = {m for m in _imports(name, path, set(sources)) if m in sources and m != name}
    return graph


def _layer(module: str) -> tuple[int, str]:
    """(layer index, the layer's group name) of a module; leaves of the package root are (0, 'leaf')."""
    best = (0, "leaf")
    longest = 0
    for index, group in enumerate(LAYERS, start=1):
        for prefix in group:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > longest:
                best, longest = (index, prefix), len(prefix)
    if longest == 0 and module.count(".") > 1 and module.startswith("realtime."):
        raise AssertionError(f"{module} is in a package that LAYERS does not place")
    return best


def test_every_package_has_a_layer():
    for module in _graph():
        _layer(module)


def test_imports_run_down_the_layers_only():
    wrong = []
    for module, targets in sorted(_graph().items()):
        level, group = _layer(module)
        for target in sorted(targets):
            t_level, t_group = _layer(target)
            if t_group == group and group != "leaf":
                continue
            if t_level >= level and not (group == "leaf" == t_group):
                wrong.append(f"{module} (layer {level}, {group}) imports {target} (layer {t_level}, {t_group})")
    assert not wrong, "imports that run up or sideways:\n" + "\n".join(wrong)


def test_the_module_graph_has_no_circle():
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_edits_sys_path():
    offenders = []
    for name, path in _sources().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, f"sys.path used in {offenders}"


def test_the_layer_check_sees_a_wrong_import(tmp_path, monkeypatch):
    """The checker itself: a rig module importing the pipeline is reported."""
    fake = {"realtime.rig.bad": tmp_path / "bad.py", "realtime.pipeline": tmp_path / "pipeline.py"}
    fake["realtime.rig.bad"].write_text("from realtime.pipeline import drive\n")
    fake["realtime.pipeline"].write_text("")
    monkeypatch.setattr(sys.modules[__name__], "_sources", lambda: fake)
    with pytest.raises(AssertionError, match="realtime.rig.bad .* imports realtime.pipeline"):
        test_imports_run_down_the_layers_only()
