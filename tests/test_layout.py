"""The repository's layout holds: imports only go down, the library never imports the
repository's tools, and the wheel ships the library alone."""

import ast
import os
import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT

import keras_swiftformer

pytestmark = pytest.mark.any_backend(runs_on="torch")

LIBRARY = "keras_swiftformer"
TOOLS = ("conversion", "training", "benchmarks", "examples", "tests")
# Each library module's level: a module may import modules of its own level or below, never
# above. The package itself (keras_swiftformer/__init__.py) is the facade over all of them.
LEVELS = (
    ("keras_swiftformer.io", 0),
    ("keras_swiftformer.optional", 0),
    ("keras_swiftformer.variants", 0),
    ("keras_swiftformer.layers", 1),
    ("keras_swiftformer.preprocessing", 1),
    ("keras_swiftformer.weights", 2),
    ("keras_swiftformer.models", 3),
    ("keras_swiftformer.convert", 4),
    ("keras_swiftformer.explain", 4),
    ("keras_swiftformer.export", 4),
    ("keras_swiftformer.training", 4),
    ("keras_swiftformer.cli", 5),
    ("keras_swiftformer.__main__", 6),
)


def _modules(package_dir):
    """{module name: path} of every Python file under a top-level package folder."""
    found = {}
    for folder, _, names in os.walk(os.path.join(ROOT, package_dir)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = path
    return found


LIBRARY_MODULES = _modules(LIBRARY)


def _level(module):
    if module == LIBRARY:
        return 7
    for prefix, level in LEVELS:
        if module == prefix or module.startswith(prefix + "."):
            return level
    raise AssertionError(f"{module} has no level in LEVELS: give it one")


def _imports(path, known):
    """(imported module, line, inside a function) for every import in the file; `from P import
    N` counts as importing P.N where that is a module of `known`."""
    tree = ast.parse(open(path).read(), path)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def in_function(node):
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, in_function(node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                yield (name if name in known else node.module), node.lineno, in_function(node)


def _top(module):
    return module.split(".")[0]


def test_library_imports_only_go_down():
    problems, graph = [], {}
    for module, path in LIBRARY_MODULES.items():
        for imported, line, _ in _imports(path, LIBRARY_MODULES):
            where = f"{os.path.relpath(path, ROOT)}:{line}"
            if _top(imported) in TOOLS:
                problems.append(f"{where}: the library imports the tool {imported}")
            if _top(imported) != LIBRARY:
                continue
            if imported == LIBRARY and module != f"{LIBRARY}.__main__":
                problems.append(f"{where}: imports the package facade {LIBRARY} (import the module it needs)")
                continue
            if _level(imported) > _level(module):
                problems.append(f"{where}: {module} (level {_level(module)}) imports {imported} (level {_level(imported)})")
            graph.setdefault(module, set()).add(imported)
    assert not problems, "\n".join(problems)
    # No cycles, also among modules of one level.
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for imported in graph.get(module, ()):
            if state.get(imported) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail + [module, imported]))
            if imported not in state:
                visit(imported, trail + [module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("package", [LIBRARY, "conversion", "training", "benchmarks"])
def test_no_import_inside_a_function_to_dodge_a_cycle(package):
    """Project modules are imported at the top of a file. (The benchmark workers import the
    framework each one measures inside its function, and nothing of the project.)"""
    modules = _modules(package)
    project = (LIBRARY,) + TOOLS
    late = [
        f"{os.path.relpath(path, ROOT)}:{line} imports {imported}"
        for module, path in modules.items()
        for imported, line, inside in _imports(path, modules)
        if inside and _top(imported) in project and not module.startswith("benchmarks.workers")
    ]
    assert not late, "\n".join(late)


def test_tools_import_the_library_not_each_other_backwards():
    """conversion/ and training/ use the library; the library (above) never uses them."""
    for package in ("conversion", "training"):
        imported = {name for path in _modules(package).values() for name, _, _ in _imports(path, LIBRARY_MODULES)}
        assert any(_top(name) == LIBRARY for name in imported), package


def test_importing_the_whole_library_imports_no_tool():
    script = (
        "import importlib, pkgutil, sys\n"
        "import keras_swiftformer\n"
        "names = [m.name for m in pkgutil.walk_packages(keras_swiftformer.__path__, 'keras_swiftformer.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        f"tools = sorted(m for m in sys.modules if m.split('.')[0] in {TOOLS!r})\n"
        "print(len(names), tools)\n"
    )
    # Run from an empty folder with nothing on the path but the installed library: a user's
    # own `training` or `conversion` folder must not be picked up either.
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        cwd=os.path.dirname(sys.executable), env=dict(os.environ, PYTHONPATH=""),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count, tools = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) == len(LIBRARY_MODULES) - 1 and tools == "[]", result.stdout


def test_the_wheel_ships_the_library_only(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    tops = sorted({name.split("/")[0] for name in names})
    assert [top for top in tops if not top.endswith(".dist-info")] == [LIBRARY], tops
    # Every library module and its data are in it.
    for module in LIBRARY_MODULES:
        relative = module.replace(".", "/")
        assert f"{relative}.py" in names or f"{relative}/__init__.py" in names, module
    assert f"{LIBRARY}/data/imagenet_classes.tsv" in names
    version = [n for n in names if n.endswith("METADATA")]
    metadata = zipfile.ZipFile(tmp_path / wheel).read(version[0]).decode()
    assert f"Version: {keras_swiftformer.__version__}" in metadata
