"""The package's layers (docs/layout.md): a module imports only from its own layer and the ones
below it. Every import of `wsrl_mjx` in every module is read with `ast`, at module level and
inside functions (a lazy import is still a dependency), and mapped to its layer."""

import ast
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "wsrl_mjx"

# Lowest first. A subpackage is one layer; a top-level module is placed on its own.
LAYERS = [
    "base",  # config.py, types.py (and the package's __init__): they import nothing of the package
    "runtime",
    "datasets",
    "agents",
    "core",
    "methods",  # methods.py, the registry: agents and the compiled chunks by name
    "phases",
    "studies",
    "run",  # run/, the command line
]
TOP_LEVEL = {
    "__init__": "base",
    "config": "base",
    "types": "base",
    "methods": "methods",
    "run": "run",
}
MAX_ENTRIES = 12


def layer_of(module: str) -> str:
    """`wsrl_mjx.phases.online` -> "phases"; `wsrl_mjx.config` -> "base"; `wsrl_mjx` -> "base"."""
    parts = module.split(".")
    assert parts[0] == "wsrl_mjx", module
    if len(parts) == 1:
        return "base"
    if parts[1] in TOP_LEVEL:
        return TOP_LEVEL[parts[1]]
    assert parts[1] in LAYERS, (
        f"{module}: wsrl_mjx.{parts[1]} has no layer; place it in tests/test_layers.py "
        "and docs/layout.md"
    )
    return parts[1]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) for every import of the package in `path`, at any depth. `from
    wsrl_mjx.x import y` counts as `wsrl_mjx.x.y` (y may be a module); relative imports resolved."""
    here = module_name(path, package_dir).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found += [(node.lineno, f"{source}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "wsrl_mjx"]


def upward_imports(package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        mine = layer_of(module_name(path, package))
        for line, name in imports(path, package):
            theirs = layer_of(name)
            if LAYERS.index(theirs) > LAYERS.index(mine):
                where = path.relative_to(package.parent)
                bad.append(f"{where}:{line} ({mine}) imports {name} ({theirs})")
    return bad


def test_no_layer_imports_a_higher_one():
    bad = upward_imports()
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))  # fails naming a module outside every layer


def test_the_package_has_few_entries():
    entries = sorted(e for e in os.listdir(PACKAGE) if e != "__pycache__")
    assert len(entries) <= MAX_ENTRIES, entries


def test_an_upward_import_is_named(tmp_path):
    """The check itself: a lazy import of a phase inside a core module is found, with its line."""
    fake = tmp_path / "wsrl_mjx"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "loops.py").write_text(
        "from wsrl_mjx.agents.base import Agent\n\n\ndef f():\n"
        "    from wsrl_mjx.phases import train\n"
    )
    assert upward_imports(fake) == [
        "wsrl_mjx/core/loops.py:5 (core) imports wsrl_mjx.phases.train (phases)"
    ]
