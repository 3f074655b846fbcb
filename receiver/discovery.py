"""Registries filled by discovery: every module of a package that defines a given value is registered."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["discover"]

T = TypeVar("T")


def discover(package: str, path: Iterable[str], attribute: str, kind: type[T], key: Callable[[T], str]) -> dict[str, T]:
    """``attribute`` of each module in ``package`` (whose ``__path__`` is ``path``) that is a ``kind``, by ``key``.

    Modules are imported in name order, so a registry's order never depends on the file system.
    """
    found: dict[str, T] = {}
    for module_info in sorted(pkgutil.iter_modules(path), key=lambda info: info.name):
        module = importlib.import_module(f"{package}.{module_info.name}")
        value = getattr(module, attribute, None)
        if isinstance(value, kind):
            found[key(value)] = value
    return found
