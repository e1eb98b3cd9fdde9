"""The architecture, checked on the source: packages import one way
(apps → bot → flows → analytics/documents → storage), no module imports itself back
through others, nothing imports the test doubles at runtime, and no framework file names
the safari app's concepts."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK = ("storage", "analytics", "documents", "flows", "bot")
RUNTIME = (*FRAMEWORK, "apps")
# A package may import packages of a lower rank (and itself), never one of its own rank.
RANK = {"storage": 0, "analytics": 1, "documents": 1, "flows": 2, "bot": 3, "apps": 4}
SAFARI_WORDS = re.compile(
    r"\b(safaris?|tours?|bookings?|departures?|travell?ers?|omari|harare)\b", re.IGNORECASE
)
# The one allowed mention: which app runs when none is chosen (a name, never imported).
ALLOWED = {("bot/settings.py", 'DEFAULT_APP = "apps.safari"  # the built-in bot of the README')}
# The one allowed import of the test doubles: `nyala fake-graph`, inside the command.
TESTING_IMPORTERS = {"bot/cli/__init__.py"}
TEXT_SUFFIXES = (".py", ".html", ".yaml", ".yml", ".js", ".css", ".j2", ".mako", ".md", ".txt")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(*packages: str) -> Iterator[Path]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> Iterator[tuple[str, int]]:
    """What the module imports when it is imported: module-level statements (also inside
    ``try``/``if``), not ``if TYPE_CHECKING:`` blocks, not inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path)
    package = package if path.name == "__init__.py" else package.rpartition(".")[0]

    def walk(body: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name, node.lineno
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    yield f"{base}.{alias.name}", node.lineno
            elif isinstance(node, ast.If):
                if not _type_checking(node):
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    yield from walk(block)
                for handler in node.handlers:
                    yield from walk(handler.body)

    yield from walk(tree.body)


def all_imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every import statement of the module, wherever it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno


def graph() -> dict[str, set[str]]:
    """Framework module → the framework modules it imports at import time (an app's
    package may import its submodules after making its ``App``: that is its own)."""
    modules = {module_name(p): p for p in sources(*FRAMEWORK)}
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported, _ in runtime_imports(path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_packages_import_one_way() -> None:
    wrong = []
    for path in sources(*RUNTIME):
        own = module_name(path).split(".")[0]
        relative = str(path.relative_to(ROOT))
        at_import = {target.split(".")[0] for target, _ in runtime_imports(path)}
        if "testing" in at_import:
            wrong.append(f"{relative} imports the test doubles when it is imported")
        for target, line in all_imports(path):
            other = target.split(".")[0]
            if other == "testing" and relative not in TESTING_IMPORTERS:
                wrong.append(f"{relative}:{line} imports {target} (test doubles)")
            elif other in RANK and other != own and RANK[other] >= RANK[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert cycles == []


def test_the_runtime_never_loads_the_test_doubles_or_an_app() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.server, bot.cli, flows, analytics, documents, storage;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'apps', 'testing', 'tests'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def framework_files() -> Iterator[Path]:
    for package in FRAMEWORK:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path


@pytest.mark.parametrize("package", FRAMEWORK)
def test_no_framework_file_names_safari_concepts(package: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}"
        for path in framework_files()
        if path.relative_to(ROOT).parts[0] == package
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SAFARI_WORDS.search(line) and (str(path.relative_to(ROOT)), line.strip()) not in ALLOWED
    ]
    assert found == []
