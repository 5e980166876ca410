"""Lazy exports of a package (PEP 562): a name is imported from its module on first access, then kept."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, names: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    The `__getattr__` and `__dir__` of `package` whose public `names` map to the submodule defining each (relative to
    the package, e.g. `{"EmbSumModel": "modeling_embsum"}`); `namespace` is the package's `globals()`, where a name
    is kept after its first access.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{names[name]}", package), name)
        namespace[name] = value  # the next access skips __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *names])

    return __getattr__, __dir__
