"""Lazy public names for a package's ``__init__`` (trl's and transformers' pattern).

A package lists where each public name is defined; the defining module is imported on first
access. Importing a package (or any module inside it: Python runs the package's ``__init__``
first) therefore stays cheap, and torch, transformers, chromadb or langchain load only when a
name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package with lazily imported names.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> the module that defines it.
        namespace: The package's ``globals()``, where a resolved name is cached.

    Returns:
        ``(__getattr__, __dir__)`` for the package module.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
