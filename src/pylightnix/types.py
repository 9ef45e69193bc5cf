"""Shared type aliases of pylightnix (one place, imported everywhere)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

if TYPE_CHECKING:
    from pylightnix.store.settings import StorageSettings

Path = NewType("Path", str)
"""A filesystem path (plain ``str``), as in the seed."""

Name = NewType("Name", str)
"""An object name, ``[A-Za-z0-9_-]+``."""

HashPart = NewType("HashPart", str)
"""32 lowercase hex characters."""

DRef = NewType("DRef", str)
"""``dref:<hash>-<name>``: a derivation reference."""

RRef = NewType("RRef", str)
"""``rref:<hash>-<dhash>-<name>``: a realization reference."""

RefPath: TypeAlias = list[Any]
"""``[DRef, "sub", "path"]``: a file inside the realization(s) of a dependency."""

Context: TypeAlias = dict[DRef, list[RRef]]
"""Which realizations of each dependency a build used."""

JSON: TypeAlias = Any
"""A value made of dict/list/str/int/float/bool/None only."""

Matcher: TypeAlias = Callable[["StorageSettings", list[RRef]], "list[RRef] | None"]
"""Picks among existing realizations; ``None`` means "build"."""

Realizer: TypeAlias = Callable[["StorageSettings", DRef, Context, Mapping[str, Any]], list[Path]]
"""Builds output folders in temporary space and returns their paths."""
