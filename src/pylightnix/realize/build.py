"""The realizer API of the seed: :class:`Build` objects and ``build_*`` helpers.

``build_wrapper(f)`` turns ``f(b: Build) -> None`` into a realizer: it makes
``nouts`` empty output folders in the build's private temporary folder,
calls ``f`` and returns the folders. Temporary space is owned by the realize
engine, which removes it on failure unless ``keep_failed=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Generic, TypeVar

from pylightnix.config import RConfig, cfg_attrs, is_refpath, selfref
from pylightnix.errors import BuildError, RefError
from pylightnix.refs import dref_name, is_dref
from pylightnix.store.fsops import make_readonly, make_writable, mkdtemp_in
from pylightnix.store.layout import rref2path_
from pylightnix.store.query import drefcfg
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Name, Path, RefPath, RRef

_BUILD_TMP: ContextVar[str | None] = ContextVar("pylightnix_build_tmp", default=None)


class build_tmpdir_set:  # noqa: N801 (used like a function; cheaper than a generator)
    """(engine) Within the block, builds create their folders under ``path``."""

    __slots__ = ("path", "tok")

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.tok = _BUILD_TMP.set(self.path)

    def __exit__(self, et: object, ev: object, tb: object) -> None:
        _BUILD_TMP.reset(self.tok)


def build_tmpdir(S: StorageSettings) -> str:
    """The private temporary folder of the running build (or a fresh one in ``S.tmpdir``)."""
    p = _BUILD_TMP.get()
    return p if p is not None else mkdtemp_in(S.tmpdir, "build")


@dataclass
class Build:
    """What a running build knows: its derivation, config, context and output folders.

    Subclass it (adding fields with defaults) and pass the subclass to
    :func:`build_wrapper_` to carry more state through a build.
    """

    S: StorageSettings
    dref: DRef = field(default=DRef(""))
    context: Context = field(default_factory=dict)
    config: RConfig = field(default_factory=lambda: RConfig({}))
    outpaths: list[Path] = field(default_factory=list)
    realize_args: Mapping[str, Any] = field(default_factory=dict)
    _cattrs: SimpleNamespace | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        ba: Any = self.S
        if not isinstance(ba, StorageSettings) and hasattr(ba, "S") and hasattr(ba, "dref"):
            # The original's Build(mkbuildargs(S, dref, context, ...)); its outputs
            # come from build_markstart(b, n).
            self.S, self.dref, self.context = ba.S, ba.dref, dict(ba.context)
            self.config = drefcfg(ba.dref, ba.S)
            self.realize_args = dict(getattr(ba, "rarg", None) or {})
        elif not self.dref:
            raise BuildError(
                "Build needs S, dref, context, config and outpaths (build_wrapper makes "
                "Builds; the original's Build(mkbuildargs(...)) also works)"
            )


_B = TypeVar("_B", bound=Build)


def mkbuild(
    S: StorageSettings,
    dref: DRef,
    context: Context,
    realize_args: Mapping[str, Any],
    *,
    nouts: int = 1,
    cls: type[_B] = Build,  # type: ignore[assignment]
) -> _B:
    """A :class:`Build` (or subclass) with ``nouts`` fresh empty output folders."""
    tmp = build_tmpdir(S)
    outs = [Path(mkdtemp_in(tmp, f"out{i}")) for i in range(nouts)]
    return cls(S, dref, context, drefcfg(dref, S), outs, realize_args)


@dataclass(frozen=True)
class BuildWrapper(Generic[_B]):
    """A realizer that runs ``f(b)`` on a fresh :class:`Build` (picklable)."""

    f: Callable[[_B], None]
    nouts: int = 1
    cls: type[_B] = Build  # type: ignore[assignment]

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        b = mkbuild(S, dref, context, realize_args, nouts=self.nouts, cls=self.cls)
        self.f(b)
        return list(b.outpaths)

    def __repr__(self) -> str:
        name = getattr(self.f, "__qualname__", repr(self.f))
        return f"build_wrapper({name}, nouts={self.nouts})"


def build_wrapper(f: Callable[[Build], None], nouts: int = 1) -> BuildWrapper[Build]:
    """Turn ``f(b: Build) -> None`` into a realizer making ``nouts`` outputs."""
    if type(nouts) is not int or nouts < 1:
        raise BuildError(f"build_wrapper(nouts={nouts!r}): nouts must be a positive int")
    return BuildWrapper(f, nouts, Build)


def build_wrapper_(f: Callable[[_B], None], cls: type[_B], nouts: int = 1) -> BuildWrapper[_B]:
    """Like :func:`build_wrapper`, with a :class:`Build` subclass ``cls``."""
    if type(nouts) is not int or nouts < 1:
        raise BuildError(f"build_wrapper_(nouts={nouts!r}): nouts must be a positive int")
    return BuildWrapper(f, nouts, cls)


def build_config(b: Build) -> RConfig:
    """The build's config, self-refs resolved to the build's own DRef."""
    return b.config


def build_cattrs(b: Build) -> SimpleNamespace:
    """Attribute view of the build's config (``c.name``, ``c.src``)."""
    if b._cattrs is None:
        b._cattrs = cfg_attrs(b.config)
    return b._cattrs


def build_context(b: Build) -> Context:
    """The realizations of each direct dependency this build uses."""
    return b.context


def build_name(b: Build) -> Name:
    """The name of the derivation being built."""
    return dref_name(b.dref)


def build_outpaths(b: Build) -> list[Path]:
    """All output folders of the build."""
    return list(b.outpaths)


def build_outpath(b: Build) -> Path:
    """The one output folder of a single-output build."""
    if len(b.outpaths) != 1:
        raise BuildError(
            f"build_outpath: {b.dref} has {len(b.outpaths)} outputs; use build_outpaths(b)",
            dref=b.dref,
        )
    return b.outpaths[0]


def build_deref_(b: Build, dref: DRef) -> list[RRef]:
    """The realizations of dependency ``dref`` this build uses."""
    try:
        return list(b.context[dref])
    except KeyError:
        raise RefError(
            f"{dref} is not a dependency of {b.dref}: mention it in the config to depend on it",
            ref=dref,
        ) from None


def build_deref(b: Build, dref: DRef) -> RRef:
    """The one realization of dependency ``dref`` this build uses."""
    rr = build_deref_(b, dref)
    if len(rr) != 1:
        raise RefError(
            f"{dref} has {len(rr)} matched realizations in this build; use build_deref_()",
            ref=dref,
        )
    return rr[0]


def build_paths(b: Build, refpath: RefPath) -> list[Path]:
    """System paths of a RefPath, one per matched realization (or output, for self)."""
    if isinstance(refpath, list) and refpath and refpath[0] == selfref:
        refpath = [b.dref, *refpath[1:]]
    if is_dref(refpath):
        refpath = [refpath]
    if not is_refpath(refpath):
        raise RefError(f"{refpath!r} is not a RefPath: expected [DRef, 'sub', 'path']", ref=refpath)
    dref, items = refpath[0], refpath[1:]
    if dref == b.dref:
        return [Path(os.path.join(o, *items)) for o in b.outpaths]
    return [Path(os.path.join(rref2path_(r, b.S), *items)) for r in build_deref_(b, dref)]


def build_path(b: Build, refpath: RefPath) -> Path:
    """The system path of a RefPath (a file of a dependency, or of this build's output)."""
    ps = build_paths(b, refpath)
    if len(ps) != 1:
        raise RefError(
            f"{refpath!r} resolves to {len(ps)} paths in {b.dref}; use build_paths()",
            ref=refpath,
        )
    return ps[0]


def dirrw(path: str) -> None:
    """Make a folder tree writable by its owner (e.g. a copy of a read-only input)."""
    make_writable(path)


def dirro(path: str) -> None:
    """Make a folder tree read-only (executable bits kept)."""
    make_readonly(path)
