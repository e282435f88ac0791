"""The shape of the codebase: components/ as packages by stage imported in one
direction, no import cycles among the project's modules, and components that
run without Prefect. Read from the source (AST), so a new cycle fails here
before it fails at import time in some other order."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("components", "flows")
# Each package of components/ and the packages it may import: the data path
# read left to right (docs/architecture.md). Training and evaluation are
# siblings; serving packages what both produce; tracking logs all of it.
ALLOWED = {
    "common": set(),
    "config": {"common"},
    "data": {"common", "config"},
    "models": {"common", "config"},
    "training": {"common", "config", "data", "models"},
    "evaluation": {"common", "config", "data", "models"},
    "serving": {"common", "config", "data", "models", "evaluation"},
    "tracking": {"common", "config", "data", "models", "evaluation", "serving"},
}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_among_the_project_modules():
    modules = _modules()
    graph = {name: (_imports(path) & set(modules)) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _package_imports(root: Path = ROOT) -> set[tuple[str, str, str]]:
    """(importing module, its package, imported package) across components/."""
    found = set()
    for name, path in _modules(root).items():
        parts = name.split(".")
        if parts[0] != "components" or len(parts) < 3:
            continue
        for imported in _imports(path):
            other = imported.split(".")
            if other[0] == "components" and len(other) > 1 and other[1] != parts[1]:
                found.add((name, parts[1], other[1]))
    return found


def test_components_is_a_few_packages_by_stage():
    top = sorted(p.name for p in (ROOT / "components").iterdir() if p.suffix == ".py")
    folders = {p.name for p in (ROOT / "components").iterdir() if (p / "__init__.py").is_file()}
    assert top == ["__init__.py"]
    assert folders == set(ALLOWED)


def test_packages_import_each_other_in_one_direction_only():
    wrong = sorted(
        f"{module} imports components.{other}"
        for module, package, other in _package_imports()
        if other not in ALLOWED[package]
    )
    assert wrong == []


def test_the_direction_check_finds_an_upward_import(tmp_path):
    probe = tmp_path / "components" / "evaluation" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from components.serving.forecaster import Forecaster\n")
    (tmp_path / "flows").mkdir()
    assert _package_imports(tmp_path) == {
        ("components.evaluation.probe", "evaluation", "serving")
    }


def test_every_package_names_its_public_surface_and_each_name_resolves():
    import importlib

    for package in ALLOWED:
        module = importlib.import_module(f"components.{package}")
        assert module.__doc__, package
        for name in module.__all__:
            assert getattr(module, name) is not None, f"components.{package}.{name}"


def test_components_run_without_prefect():
    users = sorted(
        name for name, path in _modules().items()
        if name.startswith("components") and any(
            m == "prefect" or m.startswith("prefect.") for m in _imports(path)
        )
    )  # fmt: skip
    assert users == []


def test_flows_call_tasks_not_their_bodies():
    """A task's body (`task.fn`) run inside another task hides it from
    Prefect and duplicates its contract; shared logic lives in a component
    function or is called as a (nested) task."""
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in (ROOT / "flows").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "fn"
    ]
    assert calls == [], calls
