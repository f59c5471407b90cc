"""The shape of app/'s imports: every module imports first, layers import
downward only, and no two modules import each other (docs/architecture.md).

The imports are read from the source (imports inside functions count), so a
lazy import that dodges a cycle is found like any other."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"

# Top to bottom; a module may import its own layer or a lower one. The most
# specific prefix wins. "app" is the factory (app/__init__.py).
LAYERS = {
    "app": 5,
    "app.cli": 5,
    "app.errors": 5,  # knows every layer's exceptions; only the factory imports it
    "app.auth": 4,
    "app.web": 4,
    "app.api": 4,
    "app.services": 3,
    "app.models": 2,
    "app.extensions": 2,
    "app.database": 2,
    "app.model_service": 2,
    "app.explanations": 2,
    "app.http": 1,
    "app.observability": 1,
    "app.config": 1,
    "app.memory": 1,
    "app.version": 1,
    "app.inference": 0,
}

# Imports every child process below finds done, so that each child only pays
# for app's own modules.
PRELOAD = r"""
import importlib, json, os, sys, traceback

modules, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert not [m for m in sys.modules if m == "app" or m.startswith("app.")]
failed, running = [], {}


def reap():
    pid, status = os.wait()
    if status:
        failed.append(running[pid])
    del running[pid]


for name in modules:
    while len(running) >= (os.cpu_count() or 1):
        reap()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    running[pid] = name
while running:
    reap()
print(json.dumps(sorted(failed)))
"""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(p): p for p in APP.rglob("*.py") if "__pycache__" not in p.parts
    }


def owner(name: str, known: dict) -> str | None:
    """``name`` or the nearest package above it that is a module of app/."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, path: Path, known: dict) -> list[tuple[str, list[str]]]:
    """Each import of ``name`` as (the module it names, the modules it runs)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [[a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = (
                    name.split(".")
                    if path.name == "__init__.py"
                    else (name.split(".")[:-1])
                )
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [[f"{base}.{a.name}", base] for a in node.names]
        else:
            continue
        for candidates in targets:
            module = next(
                (c for c in candidates if c in known),
                owner(candidates[-1], known),
            )
            if module is None:
                continue  # not app's
            packages = []
            parent = module.rpartition(".")[0]
            while parent:
                packages.append(parent)
                parent = parent.rpartition(".")[0]
            found.append((module, packages))
    return found


def layer(name: str) -> int:
    prefix = name
    while prefix not in LAYERS:
        prefix = prefix.rpartition(".")[0]
        assert prefix, f"{name} has no layer in LAYERS"
    return LAYERS[prefix]


def third_party_imports(known: dict) -> list[str]:
    """What app's modules import at their top level from outside app/."""
    names = set()
    for path in known.values():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module or "")
    return sorted(n for n in names if n and n != "app" and not n.startswith("app."))


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_every_module_can_be_imported_first():
    """Each module imported first, in a process where nothing of app/ was
    imported yet (one forked child per module, from a parent that already
    imported the third-party packages)."""
    known = modules()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PRELOAD,
            json.dumps(sorted(known)),
            json.dumps(third_party_imports(known)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert failed == [], f"{failed}\n{result.stderr[-4000:]}"


def test_layers_import_downward_only():
    known = modules()
    upward = [
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name, path in known.items()
        for target, _ in imports(name, path, known)
        if target != name and layer(target) > layer(name)
    ]
    assert upward == []


# What a service must not import: it takes plain values, never the request,
# current_app or g (convention 18); the views read those and hand them in.
HTTP_PACKAGES = ("flask", "flask_login", "flask_wtf", "werkzeug")
# Lookups in the current app: the view hands in what they would find.
APP_LOOKUPS = {"app.model_service": {"model_service"}}


def test_services_see_no_http():
    found = []
    for name, path in modules().items():
        if not name.startswith("app.services"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
                lookups = APP_LOOKUPS.get(node.module, set())
                found += [
                    f"{name} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name in lookups
                ]
            else:
                continue
            found += [
                f"{name} imports {n}" for n in names if n.split(".")[0] in HTTP_PACKAGES
            ]
    assert found == []


def test_no_import_cycles():
    """Importing a.b.c also runs a and a.b, so an import ties the importer to
    every package on the way too (except its own ancestors)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, packages in imports(name, path, known):
            for module in [target, *packages]:
                if module != name and not name.startswith(module + "."):
                    graph[name].add(module)
    assert strongly_connected(graph) == []


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph``: its strongly connected components of two or
    more modules (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_two_classes_share_a_name():
    """A module-level class's name says which one it is: the ORM's Prediction,
    the API's PredictionOut, the classifier's LabelScore. (Nested classes such
    as WTForms' ``Meta`` are named by their framework.)"""
    where: dict[str, list[str]] = {}
    for name, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(name)
    assert {cls: names for cls, names in where.items() if len(names) > 1} == {}
