"""Lens: navigate configs through dependencies by attribute access.

``mklens(x)`` starts at a DRef, an RRef, a RefPath, a :class:`Build`, a
:class:`Closure` (or what ``instantiate``/``realize`` return). Attribute
access walks config keys (``mklens(rref).model.lr``); a key whose value is a
DRef moves into that dependency's config; a key whose value is a RefPath
(``[dref, "file"]``, or a resolved ``[selfref, "file"]``) points at a file.
Walking is lazy: the path is resolved when a terminal is read:

* ``.val``      the value there (at a dependency: its DRef);
* ``.optval``   the same, or ``None`` when a key is missing;
* ``.refpath``  the RefPath there (``[dref]`` at a dependency);
* ``.syspath``  the system path: a realization folder, or a file in it;
* ``.dref``     the DRef there (of the dependency or the RefPath's head);
* ``.rref``     the one realization there;
* ``.contents`` the text of the file at ``.syspath``.

System paths need to know which realizations are meant: from an RRef they
follow the realizations' stored contexts; from a Build, its context (and its
own output folder); from ``realize()``'s result, the returned context; from a
bare DRef or Closure there is no context, and ``.syspath`` says so. Config keys
named like a terminal are reached with ``lens.get("val")`` or ``lens["val"]``.
Configs are read once per lens chain (children share a cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pylightnix.errors import LensError
from pylightnix.realize.build import Build
from pylightnix.realize.registry import Closure
from pylightnix.refs import is_dref, is_rref, rref2dref
from pylightnix.store.layout import outside_store_problem
from pylightnix.store.query import dref2path_checked, drefcfg, rref2path, rrefctx
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import Context, DRef, Path, RefPath, RRef

_MISSING = object()


@dataclass
class _Root:
    S: StorageSettings
    label: str
    dref: DRef | None
    rrefs: list[RRef] | None
    refpath: RefPath | None = None
    context: Context | None = None
    build: Build | None = None
    cfgs: dict[DRef, dict[str, Any]] = field(default_factory=dict)

    def cfg(self, dref: DRef) -> dict[str, Any]:
        c = self.cfgs.get(dref)
        if c is None:
            c = drefcfg(dref, self.S)
            self.cfgs[dref] = c
        return c


@dataclass(frozen=True)
class _Pos:
    """Where a walk ended: at a derivation (``dref``), a RefPath, or a plain value."""

    value: Any
    dref: DRef | None = None
    rrefs: list[RRef] | None = None
    refpath: RefPath | None = None
    why_no_rrefs: str = ""


class Lens:
    """A path into configs; see the module docstring. Make one with :func:`mklens`."""

    __slots__ = ("_root", "_steps")

    def __init__(self, root: _Root, steps: tuple[str, ...] = ()) -> None:
        self._root = root
        self._steps = steps

    def __getattr__(self, key: str) -> Lens:
        if key.startswith("_"):
            raise AttributeError(key)
        return Lens(self._root, (*self._steps, key))

    def __getitem__(self, key: str) -> Lens:
        return Lens(self._root, (*self._steps, key))

    def get(self, key: str) -> Lens:
        """Walk into ``key`` (also for keys named like a terminal, e.g. ``'val'``)."""
        return Lens(self._root, (*self._steps, key))

    def __repr__(self) -> str:
        return f"<Lens {self._where()}>"

    def _where(self, terminal: str = "") -> str:
        return "".join(
            [f"mklens({self._root.label})", *(f".{s}" for s in self._steps)]
            + ([f".{terminal}"] if terminal else [])
        )

    def _fail(self, terminal: str, msg: str) -> LensError:
        return LensError(f"{self._where(terminal)}: {msg}", ref=self._root.label)

    def _sub_rrefs(self, parent: _Pos, dep: DRef) -> tuple[list[RRef] | None, str]:
        r = self._root
        if r.context is not None and dep in r.context:
            return list(r.context[dep]), ""
        if parent.dref is not None and parent.dref == r.dref and r.build is not None:
            rr = r.build.context.get(dep)
            return (list(rr), "") if rr is not None else (None, f"{dep} is not in the build")
        if parent.rrefs is None:
            return None, parent.why_no_rrefs
        out: set[RRef] = set()
        for p in parent.rrefs:
            out.update(rrefctx(p, r.S).get(dep, []))
        return sorted(out), ""

    def _start(self) -> _Pos:
        r = self._root
        why = (
            ""
            if r.rrefs is not None or r.build is not None
            else f"{r.dref} was given without a context (start from an RRef, a Build "
            "or realize()'s result to resolve system paths)"
        )
        if r.refpath is not None:
            return _Pos(r.refpath, None, r.rrefs, r.refpath, why)
        return _Pos(r.dref, r.dref, r.rrefs, None, why)

    def _walk(self, terminal: str, missing_ok: bool = False) -> _Pos | None:
        pos = self._start()
        for i, key in enumerate(self._steps):
            walked = self._steps[:i]
            if pos.dref is not None and pos.refpath is None:
                cont: Any = self._root.cfg(pos.dref)
                what = f"the config of {pos.dref}"
            elif isinstance(pos.value, dict):
                cont = pos.value
                what = "the dict at ." + ".".join(walked)
            else:
                raise self._fail(
                    terminal,
                    f"cannot walk into {key!r}: the value at ."
                    f"{'.'.join(walked)} is {pos.value!r}, not a config or dict",
                )
            if key not in cont:
                if missing_ok:
                    return None
                keys = ", ".join(sorted(cont))
                raise self._fail(terminal, f"{key!r} is not a key of {what} (keys: {keys})")
            v = cont[key]
            owner = pos.dref
            if is_dref(v):
                d = DRef(v)
                if d == owner:
                    pos = _Pos(d, d, pos.rrefs, None, pos.why_no_rrefs)
                else:
                    rr, why = self._sub_rrefs(pos, d)
                    pos = _Pos(d, d, rr, None, why)
            elif isinstance(v, list) and v and is_dref(v[0]):
                d = DRef(v[0])
                if d == owner:
                    pos = _Pos(v, None, pos.rrefs, list(v), pos.why_no_rrefs)
                else:
                    rr, why = self._sub_rrefs(pos, d)
                    pos = _Pos(v, None, rr, list(v), why)
            else:
                pos = _Pos(v, None, None, None, "")
        return pos

    @property
    def val(self) -> Any:
        """The value at the end of the path."""
        return self._pos("val").value

    @property
    def optval(self) -> Any:
        """The value at the end of the path, or ``None`` when a key is missing."""
        pos = self._walk("optval", missing_ok=True)
        return None if pos is None else pos.value

    def _pos(self, terminal: str) -> _Pos:
        pos = self._walk(terminal)
        if pos is None:  # pragma: no cover - missing_ok=False raises instead
            raise self._fail(terminal, "missing")
        return pos

    @property
    def dref(self) -> DRef:
        """The DRef at the end of the path (a dependency, or a RefPath's head)."""
        pos = self._pos("dref")
        if pos.dref is not None:
            return pos.dref
        if pos.refpath is not None:
            return DRef(pos.refpath[0])
        raise self._fail("dref", f"the value {pos.value!r} is not a DRef or RefPath")

    @property
    def refpath(self) -> RefPath:
        """The RefPath at the end of the path (``[dref]`` at a dependency)."""
        pos = self._pos("refpath")
        if pos.refpath is not None:
            return list(pos.refpath)
        if pos.dref is not None:
            return [pos.dref]
        raise self._fail("refpath", f"the value {pos.value!r} is not a DRef or RefPath")

    def _rrefs(self, terminal: str) -> tuple[_Pos, list[RRef]]:
        pos = self._pos(terminal)
        if pos.dref is None and pos.refpath is None:
            raise self._fail(terminal, f"the value {pos.value!r} is not a DRef or RefPath")
        if pos.rrefs is None:
            raise self._fail(terminal, pos.why_no_rrefs or "no realization is known here")
        return pos, pos.rrefs

    @property
    def rrefs(self) -> list[RRef]:
        """Every realization at the end of the path."""
        return list(self._rrefs("rrefs")[1])

    @property
    def rref(self) -> RRef:
        """The one realization at the end of the path."""
        _, rr = self._rrefs("rref")
        if len(rr) != 1:
            raise self._fail("rref", f"there are {len(rr)} realizations here; use .rrefs")
        return rr[0]

    @property
    def syspath(self) -> Path:
        """The system path at the end of the path (folder of a realization, or a file)."""
        r = self._root
        pos = self._pos("syspath")
        items = list(pos.refpath[1:]) if pos.refpath is not None else []
        d = pos.dref if pos.dref is not None else (pos.refpath[0] if pos.refpath else None)
        if r.build is not None and d == r.build.dref:
            outs = r.build.outpaths
            if len(outs) != 1:
                raise self._fail("syspath", f"the build has {len(outs)} outputs")
            return Path(os.path.join(outs[0], *items))
        if not self._steps and r.refpath is None and pos.rrefs is None and r.build is None:
            # A bare DRef without a context: its derivation folder (as the original).
            return dref2path_checked(DRef(str(d)), r.S)
        _, rr = self._rrefs("syspath")
        if len(rr) != 1:
            raise self._fail("syspath", f"there are {len(rr)} realizations here; use .rrefs")
        return Path(os.path.join(rref2path(rr[0], r.S), *items))

    @property
    def contents(self) -> str:
        """The text (UTF-8) of the file at :attr:`syspath`."""
        p = self.syspath
        S = self._root.S
        if p.startswith(fsS(S).storage + os.sep):
            # A file of the store (not of a running build): reading never leaves the store.
            why = outside_store_problem(p, S)
            if why is not None:
                raise self._fail("contents", f"{p!r} {why}")
        try:
            with open(p, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise self._fail("contents", f"cannot read {p!r}: {e.strerror}") from e


def mklens(
    x: Any,
    S: StorageSettings | None = None,
    *,
    context: Context | None = None,
    b: Build | None = None,
    ctx: Context | None = None,
    r: Any = None,
) -> Lens:
    """Start a :class:`Lens`.

    Args:
        x: a DRef, RRef, RefPath, Build, Closure, ``(result, Closure)`` from
            ``instantiate`` or ``(result, Closure, Context)`` from ``realize``.
        S: the store (default: the Build's or Closure's, else the default store).
        context: realizations of derivations (as ``realize`` returns) used to
            resolve system paths from a DRef.
        b, ctx, r: the original's keywords: resolve through a running build
            (its own DRef is the build), a context, a registry's store.

    Raises:
        LensError: ``x`` is none of these.
    """
    if context is None:
        context = ctx
    if S is None and r is not None:
        S = r.S
    if b is not None:
        if x is b or x == b.dref:
            x = b
        else:
            S, context = S or b.S, context if context is not None else b.context
    label = x if isinstance(x, str) else type(x).__name__
    if isinstance(x, tuple) and len(x) in (2, 3) and isinstance(x[1], Closure):
        if len(x) == 3 and context is None:
            context = x[2]
        x = x[1]
    if isinstance(x, Build):
        return Lens(_Root(x.S, str(x.dref), x.dref, None, build=x, context=context))
    if isinstance(x, Closure):
        if len(x.targets) != 1:
            raise LensError(
                f"mklens(Closure): the closure has {len(x.targets)} targets; "
                "start from one of its DRefs",
                ref=None,
            )
        t = x.targets[0]
        rr = list(context[t]) if context is not None and t in context else None
        return Lens(_Root(S or x.S, str(t), t, rr, context=context))
    s = fsS(S)
    if is_rref(x):
        return Lens(_Root(s, str(x), rref2dref(RRef(x)), [RRef(x)], context=context))
    if is_dref(x):
        d = DRef(x)
        rr = list(context[d]) if context is not None and d in context else None
        return Lens(_Root(s, str(x), d, rr, context=context))
    if isinstance(x, list) and x and (is_dref(x[0]) or is_rref(x[0])):
        head = x[0]
        if is_rref(head):
            d, rr = rref2dref(RRef(head)), [RRef(head)]
        else:
            d = DRef(head)
            rr = list(context[d]) if context is not None and d in context else None
        rp: RefPath = [d, *x[1:]]
        return Lens(_Root(s, repr(x), d, rr, refpath=rp, context=context))
    raise LensError(
        f"mklens({label!r}): expected a DRef, RRef, RefPath, Build, Closure or the result "
        "of instantiate()/realize()",
        ref=x if isinstance(x, str) else None,
    )
