"""The package's modules take only public names from each other: a name another module needs has no leading
underscore (or the code lives where it is used)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "embsum_hf"


def test_no_module_imports_a_private_name_of_another():
    private = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                private += [
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert private == []
