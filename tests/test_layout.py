"""The package's modules take only public names from each other: a name another module needs has no leading
underscore (or the code lives where it is used), and a private module (`data/_io.py`) is imported only inside its
own package; code outside it (the commands, the benchmarks, the examples) uses the package's public names."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "embsum_hf"


def imports(path: Path):
    """`(line, absolute module, imported names)` of every `from ... import ...` in `path`."""
    module = path.relative_to(REPO).with_suffix("").parts
    package = module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            target = ".".join((*base, *(node.module.split(".") if node.module else ())))
            yield node.lineno, target, [alias.name for alias in node.names]


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_a_private_name_of_another():
    found = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, _, names in imports(path)
        for name in names
        if private(name)
    ]
    assert found == []


def test_private_modules_are_imported_only_inside_their_package():
    found = []
    for folder in ("embsum_hf", "benchmarks", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            importer = ".".join(path.relative_to(REPO).parts[:-1])
            for line, target, _ in imports(path):
                parts = target.split(".")
                for i, part in enumerate(parts):
                    owner = ".".join(parts[:i])
                    if private(part) and not (importer == owner or importer.startswith(owner + ".")):
                        found.append(f"{path.relative_to(REPO)}:{line}: {target}")
    assert found == []
