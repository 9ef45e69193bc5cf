"""``@autostage``: a plain Python function becomes a stage.

The function's parameters with defaults form the config::

    @autostage(nouts=3)
    def train(data=dataset, lr=0.1, out=[selfref, "model.txt"], rindex=0, build=None):
        ...

* a default that is another autostage (or a DRef) is a dependency: at
  instantiate time the dependency's stage is instantiated into the same
  registry and its DRef goes into the config; at build time the parameter
  receives a :class:`StageAttrs` (the dependency's resolved config plus
  ``.dref``, ``.rref`` and ``.syspath``), or a list of them when its matcher
  chose several realizations;
* ``[selfref, "file"]`` arrives as the concrete path of that file in the
  output being built (its parent folder exists);
* ``[dref, "file"]`` (a file of a dependency) arrives as its system path;
* ``rindex`` (if the function has it) is the index of the output being built:
  with ``nouts=N`` the function is called once per output;
* ``build`` (if the function has it) receives the :class:`Build`.

Under :func:`realizeE`, an output of a ``nouts=N`` build whose call raises
is recorded as a failed realization of its own and the other outputs are
kept (see ``realize/failures.py``); under :func:`realize` it fails the build.

Calling the stage with keyword overrides (``train(lr=0.01)``) makes another
derivation. The stage works with ``instantiate(train)``,
``realize1(instantiate(train))`` and ``instantiate_inplace(train)``.

Source hashing: the config holds ``"__source__"``, a sha256 over the
function's source normalized by :mod:`ast` (``ast.unparse`` of the function
with its decorators, docstring and parameter defaults removed) and over the
normalized sources of every ``sourcedeps`` entry. Comments, blank lines,
formatting and docstrings do not change it; any edit of the body does.
Defaults are left out because their values are already in the config. The
hash is the same in every interpreter run (no salted ``hash()``); a new
Python version whose ``ast.unparse`` prints code differently may change it,
which only causes a rebuild.

Code tracking: the user's own code that the function calls counts too. At
the first instantiate (when the whole module is loaded), the global names
the function's code uses (``helper``, ``helpers.clean``) are resolved,
transitively through what those use, and classified by the module defining
them:

* the user's code (any module outside the standard library and
  ``site-packages``; a package installed with ``pip install -e`` counts as
  the user's): every module-level function and class reached, and every
  module-level number, string or boolean, goes into ``"__code__"`` as
  ``{"module.qualname": hash}`` (the normalized source, defaults included);
* an installed package (under ``site-packages``/``dist-packages``): its
  distribution's version goes into ``"__versions__"`` (``{"numpy": "2.1.0"}``);
* the standard library, builtins, pylightnix itself and other autostages
  (dependencies, covered by their DRefs): nothing.

Editing a helper (in any module of the project) so changes the DRef of the
stages using it, and only theirs; ``explain`` names the function that
changed. What cannot be seen statically (``getattr`` by a computed name, data
files, code run through ``exec``) still needs ``sourcedeps=``. A module run as
a script (``__main__``) or loaded by ``pylightnix realize file.py:stage`` is
named after its file, so both ways give one DRef. Both keys appear only when
non-empty. (Code tracking came after the first releases of ``@autostage``:
stages calling helpers got new DRefs then, and are built once more.)
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import os
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import is_refpath
from pylightnix.errors import InstantiateError, RefError
from pylightnix.realize.build import Build, build_paths, mkbuild
from pylightnix.realize.executors import pickled_by_value
from pylightnix.realize.failures import capture_output_failure, output_failures_captured
from pylightnix.realize.matchers import match_latest
from pylightnix.realize.registry import Registry, mkdrv
from pylightnix.refs import is_dref, is_name, rref2dref
from pylightnix.store.query import drefcfg, rref2path, rrefctx
from pylightnix.store.settings import StorageSettings
from pylightnix.types import Context, DRef, Matcher, Path, RRef

SOURCE_KEY = "__source__"
"""The config key holding the hash of the stage function's source."""

_SPECIAL = ("build", "rindex")
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
"""The default of a parameter without one: the stage call must give its value."""
_FORBIDDEN = ("r", "name", SOURCE_KEY, "__code__", "__versions__")
_TAG = b"pylightnix-autostage-source-v1\0"


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def _normalized_function(f: Callable[..., Any]) -> str:
    """The normalized source of a function (see the module docstring)."""
    try:
        src = textwrap.dedent(inspect.getsource(f))
    except (OSError, TypeError) as e:
        raise InstantiateError(
            f"@autostage cannot read the source of {f!r} ({e}): define the function "
            "in a file (a module or a script), not in an interactive prompt or exec()"
        ) from e
    tree = ast.parse(src)
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise InstantiateError(f"@autostage expects a function defined with def, got {f!r}")
    node.decorator_list = []
    node.body = _strip_docstring(node.body)
    node.args.defaults = []
    node.args.kw_defaults = [None for _ in node.args.kw_defaults]
    return ast.unparse(node)


def _normalized_source(x: Any) -> str:
    if isinstance(x, AutoStage):
        return _normalized_function(x.f)
    if inspect.isfunction(x) or inspect.ismethod(x):
        return _normalized_function(x)
    if inspect.ismodule(x) or inspect.isclass(x):
        try:
            src = textwrap.dedent(inspect.getsource(x))
        except (OSError, TypeError) as e:
            raise InstantiateError(
                f"@autostage(sourcedeps=...) cannot read the source of {x!r} ({e})"
            ) from e
        # ast.unparse drops comments and formatting, like for the stage function.
        return ast.unparse(ast.parse(src))
    raise InstantiateError(
        f"@autostage(sourcedeps=...) got {x!r}: list functions, classes, modules or "
        "autostages whose source the stage depends on"
    )


def source_hash(f: Callable[..., Any], sourcedeps: Iterable[Any] = ()) -> str:
    """The stable source hash of a stage function and its source dependencies.

    Args:
        f: the stage function.
        sourcedeps: functions, classes, modules or autostages also hashed.

    Returns:
        32 hex characters of sha256 over the normalized sources.

    Raises:
        InstantiateError: a source cannot be read.
    """
    h = hashlib.sha256(_TAG)
    for part in [_normalized_function(f), *(_normalized_source(x) for x in sourcedeps)]:
        b = part.encode("utf-8")
        h.update(str(len(b)).encode() + b"\0" + b)
    return h.hexdigest()[:32]


CODE_KEY = "__code__"
"""The config key holding the hashes of the user's functions a stage calls."""
VERSIONS_KEY = "__versions__"
"""The config key holding the versions of installed packages a stage calls."""

_TRACK_LIMIT = 5000
"""At most this many objects are visited per stage (a bound on pathological graphs)."""
_SCALARS = (int, float, str, bool)
_STAGE_MODULE_PREFIX = "_pylightnix_stage_"  # how `pylightnix realize file.py:f` names a file
_SITE_DIRS = ("site-packages", "dist-packages")


def _module_label(mod: types.ModuleType) -> str:
    name = mod.__name__
    if name == "__main__" or name.startswith(_STAGE_MODULE_PREFIX):
        f = getattr(mod, "__file__", None)
        if f:
            return str(os.path.splitext(os.path.basename(f))[0])
    return name


def _module_kind(name: str) -> str:
    """``"user"``, ``"installed"`` or ``"system"`` (standard library, builtins, pylightnix)."""
    top = name.split(".", maxsplit=1)[0]
    if top in sys.stdlib_module_names or top in ("builtins", "pylightnix"):
        return "system"
    mod = sys.modules.get(name)
    f = getattr(mod, "__file__", None) if mod is not None else None
    if not f:
        return "system"  # built into the interpreter
    parts = os.path.normpath(os.path.abspath(f)).split(os.sep)
    return "installed" if any(p in _SITE_DIRS for p in parts) else "user"


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _dist_version(module: str) -> tuple[str, str]:
    """``(distribution, version)`` of the installed package holding ``module``."""
    top = module.split(".", maxsplit=1)[0]
    dists = _distributions().get(top, [])
    name = dists[0] if dists else top
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return name, "unknown"


def _helper_source(x: Any) -> str:
    """The normalized source of a helper function or class (docstrings out, defaults in)."""
    try:
        src = textwrap.dedent(inspect.getsource(x))
    except (OSError, TypeError):
        code = getattr(x, "__code__", None)
        if code is None:
            return f"<no source: {x!r}>"
        # Made by exec() or in a prompt: the bytecode and constants still tell edits apart.
        return f"<code {code.co_code.hex()} {code.co_consts!r} {code.co_names!r}>"
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.body = _strip_docstring(node.body)
    return ast.unparse(tree)


def _code_names(code: types.CodeType) -> set[str]:
    """Every global or attribute name a code object (and the ones nested in it) uses."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _code_names(c)
    return out


def _functions_of(x: Any) -> list[types.FunctionType]:
    if inspect.isfunction(x):
        return [x]
    if inspect.isclass(x):
        out: list[types.FunctionType] = []
        for v in vars(x).values():
            f = v.__func__ if isinstance(v, staticmethod | classmethod) else v
            if isinstance(f, property):
                out.extend(g for g in (f.fget, f.fset, f.fdel) if inspect.isfunction(g))
            elif inspect.isfunction(f):
                out.append(f)
        return out
    return []


@dataclass
class _Tracker:
    code: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)

    def visit_function(self, f: types.FunctionType) -> None:
        names = _code_names(f.__code__)
        g = f.__globals__
        for n in sorted(names):
            if n in g:
                self.consider(g[n], n, g, names)
        for cell in f.__closure__ or ():
            try:
                self.consider(cell.cell_contents, None, g, names)
            except ValueError:
                pass  # an empty cell

    def consider(self, v: Any, name: str | None, g: Mapping[str, Any], names: set[str]) -> None:
        if id(v) in self.seen or len(self.seen) > _TRACK_LIMIT:
            return
        self.seen.add(id(v))
        if isinstance(v, AutoStage):
            return  # a dependency: its own DRef covers its code
        if inspect.ismethod(v):
            v = v.__func__
        if hasattr(v, "__wrapped__") and not isinstance(v, type):
            # A decorated helper (functools.lru_cache, wraps): track the function it wraps.
            with contextlib.suppress(ValueError):
                v = inspect.unwrap(v)
        if inspect.ismodule(v):
            kind = _module_kind(v.__name__)
            if kind == "installed":
                dist, ver = _dist_version(v.__name__)
                self.versions[dist] = ver
            elif kind == "user":
                for n in sorted(names):
                    if n in vars(v):
                        self.consider(vars(v)[n], n, vars(v), names)
            return
        if inspect.isfunction(v) or inspect.isclass(v):
            modname = getattr(v, "__module__", None) or ""
            kind = _module_kind(modname)
            if kind == "installed":
                dist, ver = _dist_version(modname)
                self.versions[dist] = ver
            elif kind == "user":
                mod = sys.modules.get(modname)
                label = _module_label(mod) if mod is not None else modname
                digest = hashlib.sha256(_helper_source(v).encode("utf-8")).hexdigest()[:16]
                self.code[f"{label}.{v.__qualname__}"] = digest
                for f in _functions_of(v):
                    self.visit_function(f)
            return
        if type(v) in _SCALARS and name is not None:
            modname = g.get("__name__", "")
            if isinstance(modname, str) and _module_kind(modname) == "user":
                mod = sys.modules.get(modname)
                label = _module_label(mod) if mod is not None else modname
                digest = hashlib.sha256(repr(v).encode("utf-8")).hexdigest()[:16]
                self.code[f"{label}.{name}"] = digest


def track_code(f: Callable[..., Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The user's functions, classes and constants ``f`` reaches, and installed packages' versions.

    Returns:
        ``(code, versions)``: ``{"module.qualname": hash16}`` (``f`` itself left
        out) and ``{distribution: version}``, both sorted by key.
    """
    t = _Tracker()
    t.seen.add(id(f))
    if inspect.isfunction(f):
        t.visit_function(f)
    return dict(sorted(t.code.items())), dict(sorted(t.versions.items()))


class StageAttrs(types.SimpleNamespace):
    """A dependency as an autostage function sees it.

    Attributes are the dependency's resolved config keys (a nested dependency
    is again a :class:`StageAttrs`; a file of a realization is its system
    path), plus ``dref``, ``rref`` and ``syspath`` (the realization folder).
    These three win over config keys of the same name.
    """


def _dep_value(v: Any, S: StorageSettings, owner: DRef, rref: RRef, ctx: Context) -> Any:
    if isinstance(v, dict):
        return {k: _dep_value(x, S, owner, rref, ctx) for k, x in v.items()}
    if is_dref(v) and v != owner:
        return _attrs_list(DRef(v), ctx.get(DRef(v), []), S)
    if is_dref(v) or is_refpath(v):
        d, items = (DRef(v), []) if is_dref(v) else (DRef(v[0]), v[1:])
        rrefs = [rref] if d == owner else ctx.get(d, [])
        ps = [Path(os.path.join(rref2path(r, S), *items)) for r in rrefs]
        return ps[0] if len(ps) == 1 else ps
    if isinstance(v, list):
        return [_dep_value(x, S, owner, rref, ctx) for x in v]
    return v


def stage_attrs(rref: RRef, S: StorageSettings) -> StageAttrs:
    """The :class:`StageAttrs` of one realization.

    Raises:
        RefError: ``rref`` is not in the store.
    """
    dref = rref2dref(rref)
    ctx = rrefctx(rref, S)
    cfg = drefcfg(dref, S)
    vals = {k: _dep_value(v, S, dref, rref, ctx) for k, v in cfg.items() if k != SOURCE_KEY}
    vals.update(dref=dref, rref=rref, syspath=rref2path(rref, S))
    return StageAttrs(**vals)


def _attrs_list(dref: DRef, rrefs: list[RRef], S: StorageSettings) -> Any:
    if not rrefs:
        raise RefError(f"{dref} has no realization in this build's context", ref=dref)
    out = [stage_attrs(r, S) for r in rrefs]
    return out[0] if len(out) == 1 else out


@dataclass(frozen=True)
class AutoRealizer:
    """The realizer of an autostage: calls the function once per output (picklable).

    With ``only=i`` it builds output ``i`` alone (the function is called once,
    with ``rindex=i``; ``build.outpaths`` still lists ``nouts`` folders):
    :meth:`split_outputs` gives the parallel scheduler one such realizer per
    output, so the outputs of a ``nouts=N`` build run as N tasks.
    """

    stage: AutoStage
    only: int | None = None

    def split_outputs(self) -> list[AutoRealizer] | None:
        """One realizer per output (``None`` for a single-output stage)."""
        if self.stage.nouts == 1 or self.only is not None:
            return None
        return [AutoRealizer(self.stage, i) for i in range(self.stage.nouts)]

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        st = self.stage
        b: Build = mkbuild(S, dref, context, realize_args, nouts=st.nouts)
        cfg: dict[str, Any] = dict(b.config)
        base: dict[str, Any] = {}
        for p in st.config_params:
            v = cfg[p]
            if is_dref(v):
                base[p] = _attrs_list(DRef(v), list(context.get(DRef(v), [])), S)
            elif is_refpath(v) and v[0] != dref:
                ps = build_paths(b, v)
                base[p] = ps[0] if len(ps) == 1 else ps
            else:
                base[p] = v
        t0 = time.time()
        # Under realizeE, a failing output of a multi-output build is recorded alone.
        capture = st.nouts > 1 and self.only is None and output_failures_captured()
        errors: dict[int, Exception] = {}
        for i, out in enumerate(b.outpaths):
            if self.only is not None and i != self.only:
                continue
            kw = dict(base)
            for p in st.config_params:
                v = cfg[p]
                if is_refpath(v) and v[0] == dref:
                    path = os.path.join(out, *v[1:])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    kw[p] = path
            if "rindex" in st.params:
                kw["rindex"] = i
            if "build" in st.params:
                kw["build"] = b
            try:
                st.f(**kw)
            except Exception as e:
                if not capture:
                    raise
                errors[i] = e
        if self.only is not None:
            return [b.outpaths[self.only]]
        if len(errors) == len(b.outpaths):
            raise errors[0]
        for i, err in errors.items():
            capture_output_failure(S, dref, context, b.outpaths[i], err, build_start=t0)
        return [o for i, o in enumerate(b.outpaths) if i not in errors]

    def __repr__(self) -> str:
        if self.only is not None:
            return f"AutoRealizer({self.stage.name}, output {self.only})"
        return f"AutoRealizer({self.stage.name})"


def _load_stage(module: str, qualname: str) -> AutoStage:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, AutoStage):
        raise InstantiateError(f"{module}.{qualname} is not an autostage")
    return obj


@dataclass(frozen=True, eq=False)
class AutoStage:
    """A stage made from a function by :func:`autostage`; call it to register it.

    Attributes:
        f: the function.
        name: the derivation name.
        nouts: outputs per build.
        matcher: the matcher (default ``match_latest(nouts)``).
        source: the source hash stored in the config.
        defaults: the config parameters' default values.
        params: every parameter name of ``f``.
    """

    f: Callable[..., Any]
    name: str
    nouts: int
    matcher: Matcher
    source: str
    defaults: Mapping[str, Any]
    params: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_params(self) -> tuple[str, ...]:
        """Names of the parameters that are config keys."""
        return tuple(self.defaults)

    def __call__(self, r: Registry | None = None, **overrides: Any) -> DRef:
        """Register the derivation (and its dependencies); return its DRef.

        Args:
            r: the registry (default: the one of the enclosing instantiate).
            overrides: new values for config parameters (a new derivation).

        Raises:
            InstantiateError: an override names no parameter, or called outside instantiate.
            ConfigError: a value is not JSON data.
        """
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise InstantiateError(
                f"autostage '{self.name}' has no config parameter {unknown[0]!r} "
                f"(its parameters with defaults: {', '.join(self.defaults) or 'none'})"
            )
        cfg: dict[str, Any] = {"name": self.name, SOURCE_KEY: self.source, **self.extra}
        code, versions = self.tracked
        if code:
            cfg[CODE_KEY] = code
        if versions:
            cfg[VERSIONS_KEY] = versions
        for p, default in self.defaults.items():
            v = overrides.get(p, default)
            if v is REQUIRED:
                raise InstantiateError(
                    f"autostage '{self.name}' needs a value for its parameter {p!r}, which "
                    f"has no default: call it as {self.name}({p}=...) or give the function "
                    "parameter a default"
                )
            cfg[p] = v(r) if isinstance(v, AutoStage) else v
        return mkdrv(cfg, self.matcher, AutoRealizer(self), r)

    @functools.cached_property
    def tracked(self) -> tuple[dict[str, str], dict[str, str]]:
        """What :func:`track_code` finds for ``f``, computed at the first call (when the
        module defining it is fully loaded) and kept for the process."""
        return track_code(self.f)

    def __reduce__(self) -> tuple[Any, ...]:
        if pickled_by_value(self.f.__module__):
            # A script's stage: a worker process cannot import its module; by
            # value (cloudpickle, which the executors use then, carries ``f``).
            fields = (self.matcher, self.source, dict(self.defaults), self.params)
            return (AutoStage, (self.f, self.name, self.nouts, *fields, dict(self.extra)))
        # The module attribute is the stage itself, not ``f``: pickle by reference to it.
        return (_load_stage, (self.f.__module__, self.f.__qualname__))

    def __repr__(self) -> str:
        return f"autostage({self.f.__qualname__}, name={self.name!r}, nouts={self.nouts})"


def _make(
    f: Callable[..., Any],
    name: str | None,
    nouts: int,
    matcher: Matcher | None,
    sourcedeps: Iterable[Any],
    extra: Mapping[str, Any],
) -> AutoStage:
    if not callable(f):
        raise InstantiateError(f"@autostage decorates functions, got {f!r}")
    nm = name if name is not None else f.__name__.replace(".", "_")
    if not is_name(nm):
        raise InstantiateError(
            f"autostage name {nm!r} is not a valid name: use letters, digits, '-' and '_' "
            "(pass name=... to the decorator)"
        )
    if type(nouts) is not int or nouts < 1:
        raise InstantiateError(f"@autostage(nouts={nouts!r}): nouts must be a positive int")
    sig = inspect.signature(f)
    defaults: dict[str, Any] = {}
    params_given = dict(extra)
    for p in sig.parameters.values():
        if p.name in _FORBIDDEN:
            raise InstantiateError(
                f"autostage {f.__qualname__} has a parameter {p.name!r}, a name reserved by "
                "autostage (use the decorator's name=... for the name): rename it"
            )
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InstantiateError(
                f"autostage {f.__qualname__} has *{p.name}: every config parameter needs a "
                "name and a default"
            )
        if p.name in _SPECIAL:
            continue
        if p.default is not p.empty:
            defaults[p.name] = p.default
        elif p.name in extra:
            # The original's form: @autostage(x=1) gives parameter x its value.
            extra = {k: v for k, v in extra.items() if k != p.name}
            defaults[p.name] = params_given[p.name]
        else:
            defaults[p.name] = REQUIRED  # the stage call must give it
    clash = sorted(set(extra) & (set(defaults) | {"name", SOURCE_KEY, CODE_KEY, VERSIONS_KEY}))
    if clash:
        raise InstantiateError(
            f"@autostage config keyword {clash[0]!r} clashes with a parameter or reserved key"
        )
    m: Matcher = matcher if matcher is not None else match_latest(nouts)
    return AutoStage(
        f, nm, nouts, m, source_hash(f, sourcedeps), defaults, tuple(sig.parameters), dict(extra)
    )


def autostage(
    f: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    nouts: int = 1,
    matcher: Matcher | None = None,
    sourcedeps: Iterable[Any] = (),
    **config: Any,
) -> Any:
    """Make a stage of a function: ``@autostage`` or ``@autostage(name=..., nouts=...)``.

    Args:
        f: the function (when used without parentheses).
        name: the derivation name (default: the function's name).
        nouts: outputs per build; the function is called once per output with ``rindex``.
        matcher: the matcher (default ``match_latest(nouts)``).
        sourcedeps: functions, classes, modules or autostages whose sources are also
            hashed into the config (so editing a helper rebuilds).
        config: extra constant config keys.

    Returns:
        an :class:`AutoStage` (or a decorator making one).

    Raises:
        InstantiateError: a parameter has no default or a reserved name, or the
            source cannot be read.
    """
    sd = tuple(sourcedeps)
    if f is not None:
        return _make(f, name, nouts, matcher, sd, config)

    def deco(g: Callable[..., Any]) -> AutoStage:
        return _make(g, name, nouts, matcher, sd, config)

    return deco
