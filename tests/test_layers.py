"""The package's layers (DESIGN.md, "Layers: imports point down, never up"), read from the source with ``ast``.

Every import of every module of ``unpaired`` is read, module-level and function-local alike, and mapped to its
layer: no module may import one of a higher layer. Module-level imports (those that run when a module is
imported) must form no cycle. Every ``unpaired.*`` import of the package, the tests and bench/ must name a module
that exists and names that it defines, so a moved function leaves no stale import behind.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "unpaired"

LAYERS: dict[str, int] = {
    # 1. foundations: know nothing of methods or training
    "unpaired.io": 1,  # atomic file writes
    "unpaired.images": 1,  # image tensors <-> uint8/PIL, crops, grids
    "unpaired.devices": 1,  # which device and precision
    "unpaired.registry": 1,
    "unpaired.nn": 1,  # building blocks, networks, the image pool, the digit classifier
    "unpaired.losses": 1,
    "unpaired.data": 1,
    "unpaired.metrics": 1,  # pure metrics: frechet (FID/KID maths), paired
    # 2. methods: networks + loss terms, built from layer 1
    "unpaired.methods": 2,
    # 3. training: the loop, batches, checkpoints, logging, distributed; and the run configuration, which
    #    assembles each method's own config with the trainer's options
    "unpaired.config": 3,
    "unpaired.training": 3,
    # 4. inference: a trained model from a checkpoint
    "unpaired.inference": 4,
    "unpaired.export": 4,  # a trained model as one TorchScript or ONNX file, and running such a file
    # 5. protocols (code that trains and scores) and serving
    "unpaired.metrics.adaptation": 5,  # UNIT's domain-adaptation protocol
    "unpaired.metrics.digits": 5,  # digit judges trained and scoring translators
    "unpaired.metrics.diversity": 5,  # diversity of a translator's outputs over its styles
    "unpaired.metrics.translation": 5,  # a translator scored on a test split (FID, KID, IS, paired)
    "unpaired.clusters": 5,  # TUNIT's discovered domains, read from a checkpoint
    "unpaired.protocols": 5,
    "unpaired.serve": 5,
    # 6. the command line, and the package's own ``unpaired.load`` facade
    "unpaired.cli": 6,
    "unpaired": 6,  # the package's __init__ only: a new module of the package needs its own entry
}
"""Dotted prefix -> layer; a module takes the layer of its longest prefix here (a module's own entry overrides its
package's)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or (p != "unpaired" and module.startswith(p + "."))), key=len,
                 default=None)
    if prefix is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return LAYERS[prefix]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module (or file, outside the package)
    line: int
    target: str  # the imported module
    names: tuple[str, ...]  # names taken from it (``from target import names``); () for ``import target``
    runs_at_import: bool  # at module level, outside ``if TYPE_CHECKING:``: runs when ``source`` is imported


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def read_imports(path: Path, source: str, package: bool) -> list[Import]:
    """The imports of ``unpaired`` modules in the file ``path`` (``source``: its module name)."""
    found: list[Import] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(source, child.lineno, a.name, (), top) for a in child.names
                             if a.name == "unpaired" or a.name.startswith("unpaired."))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolved against the importing module's package
                    here = source.split(".") if package else source.split(".")[:-1]
                    base = ".".join(here[:len(here) - child.level + 1] + ([base] if base else []))
                if base == "unpaired" or base.startswith("unpaired."):
                    names = tuple(a.name for a in child.names)
                    submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
                    found.extend(Import(source, child.lineno, m, (), top) for m in submodules)
                    rest = tuple(n for n in names if f"{base}.{n}" not in MODULES)
                    if rest or not submodules:
                        found.append(Import(source, child.lineno, base, rest, top))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) \
                and not _is_type_checking(child)
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


PACKAGE_IMPORTS = [i for name, path in MODULES.items()
                   for i in read_imports(path, name, path.name == "__init__.py")]


def test_every_module_has_a_layer():
    assert {name: layer(name) for name in MODULES}


def test_no_module_imports_a_higher_layer():
    upward = [f"{i.source}:{i.line} (layer {layer(i.source)}) imports {i.target} (layer {layer(i.target)})"
              for i in PACKAGE_IMPORTS if layer(i.target) > layer(i.source)]
    assert not upward, "imports point down, never up:\n" + "\n".join(upward)


def _runtime_edges() -> dict[str, set[str]]:
    """Module -> the package modules that importing it imports first: its module-level imports and, for an import
    of ``a.b.c`` from outside the package ``a.b``, that package's ``__init__`` too."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for i in PACKAGE_IMPORTS:
        if not i.runs_at_import:
            continue
        parts = i.target.split(".")
        for n in range(2, len(parts) + 1):
            target = ".".join(parts[:n])
            if target != i.source and not i.source.startswith(target + "."):  # its own packages are loading already
                edges[i.source].add(target)
    return edges


def test_module_level_imports_form_no_cycle():
    edges = _runtime_edges()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[str] = []

    def walk(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    assert not cycles, "import cycles at module level:\n" + "\n".join(cycles)


def _defined_names(path: Path) -> set[str]:
    """Names bound at the top of a module: definitions, assignments and imports (through if/try blocks)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(ast.parse(path.read_text(), str(path)).body)
    return names


def _all_imports() -> list[Import]:
    files = {f"{p.relative_to(ROOT)}": p for folder in ("tests", "bench") for p in sorted((ROOT / folder).glob("*.py"))}
    return PACKAGE_IMPORTS + [i for name, path in files.items() for i in read_imports(path, name, False)]


@pytest.mark.parametrize("where", ["package", "tests and bench"])
def test_every_import_names_a_module_and_names_that_exist(where):
    imports = PACKAGE_IMPORTS if where == "package" else _all_imports()[len(PACKAGE_IMPORTS):]
    stale = []
    for i in imports:
        if i.target not in MODULES:
            stale.append(f"{i.source}:{i.line}: no module {i.target}")
            continue
        missing = [n for n in i.names if n != "*" and n not in _defined_names(MODULES[i.target])]
        if missing:
            stale.append(f"{i.source}:{i.line}: {i.target} has no {', '.join(missing)}")
    assert not stale, "\n".join(stale)
