"""The original's archives (``pylightnix.arch``): ``spack``/``sunpack`` as closure
export/import (a tar archive of exactly the closure, re-hashed on import)."""

from __future__ import annotations

from collections.abc import Iterable

from pylightnix.store.archive import Compression, export_closure, import_closure
from pylightnix.store.query import rrefctx
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, Path, RRef


def _compression(out: str) -> Compression | None:
    if out.endswith((".gz", ".tgz")):
        return "gz"
    if out.endswith((".xz", ".txz")):
        return "xz"
    return None


def spack(roots: Iterable[RRef], out: str, S: StorageSettings | None = None) -> Path:
    """Pack the closure of ``roots`` into the archive ``out`` (gz/xz by its extension)."""
    return export_closure(roots, out, S, compression=_compression(out))


def sunpack(archive: str, S: StorageSettings | None = None) -> list[RRef]:
    """Unpack an archive made by :func:`spack` into the store; return its root RRefs."""
    return import_closure(archive, S)


def deref_(ctxr: RRef, dref: DRef, S: StorageSettings | None = None) -> list[RRef]:
    """The realizations of ``dref`` that realization ``ctxr`` was built with."""
    return list(rrefctx(ctxr, S).get(dref, []))
