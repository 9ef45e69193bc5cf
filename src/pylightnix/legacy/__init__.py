"""The original Pylightnix's names, resolved lazily onto this engine.

``LEGACY`` maps each public name of the original that this package spells
differently to ``(module, attribute, new spelling)``. ``pylightnix.__getattr__``
and the original's module names (``pylightnix.arch``, ``pylightnix.either``,
``pylightnix.stages.fetch2``, ``pylightnix.core``, ``pylightnix.utils``...) look
names up here; each lookup warns with a :class:`DeprecationWarning` naming the
new spelling. None of these names is in ``pylightnix.__all__``.

``STDLIB`` lists the standard-library names the original re-exported (with a
warning naming their module), and ``GONE`` the original's names that have no
counterpart, with the reason (see ``docs/migrating.md``).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

_C = "pylightnix.legacy.core"
_U = "pylightnix.legacy.utils"
_B = "pylightnix.legacy.build"
_R = "pylightnix.legacy.repl"
_E = "pylightnix.legacy.either"
_F = "pylightnix.legacy.fetch2"
_A = "pylightnix.legacy.arch"
_G = "pylightnix.legacy.garb"
_D = "pylightnix.legacy.deco"
_S = "pylightnix.legacy.stages"
_CFG = "pylightnix.config"
_REFS = "pylightnix.refs"
_Q = "pylightnix.store.query"
_SET = "pylightnix.store.settings"
_LINKS = "pylightnix.store.links"

_HELPER = "kept for old code only (no new spelling)"

LEGACY: dict[str, tuple[str, str, str]] = {
    # references
    "isdref": (_REFS, "is_dref", "pylightnix.is_dref"),
    "isrref": (_REFS, "is_rref", "pylightnix.is_rref"),
    "isrefpath": (_C, "isrefpath", "pylightnix.config.is_refpath"),
    "isselfpath": (_C, "isselfpath", "a [pylightnix.selfref, ...] list test"),
    "ispromisepath": (_C, "isselfpath", "a [pylightnix.selfref, ...] list test"),
    "isclosure": (_C, "isclosure", "isinstance(x, pylightnix.Closure)"),
    "ispromise": (_C, "isselftag", "x == pylightnix.selfref"),
    "isclaim": (_C, "isselftag", "x == pylightnix.selfref"),
    "ispromiselike": (_C, "isselfpath", "a [pylightnix.selfref, ...] list test"),
    "DRefLike": ("pylightnix.types", "DRef", "pylightnix.DRef"),
    "PromisePath": ("pylightnix.types", "RefPath", "pylightnix.RefPath"),
    "MatcherO": (_C, "MatcherO", "pylightnix.types.Matcher"),
    "RealizerO": (_C, "RealizerO", "pylightnix.types.Realizer"),
    "Stage": (_C, "Stage", "a stage function"),
    "StageResult": ("typing", "Any", "DRefs or containers of them"),
    "unpack_closure_arg_": (
        "pylightnix.realize.engine",
        "as_closure",
        "pylightnix.realize.engine.as_closure",
    ),
    "undref": (_C, "undref", "pylightnix.parse_dref"),
    "unrref": (_C, "unrref", "pylightnix.parse_rref"),
    "mkdref": (_REFS, "mkdref", "pylightnix.refs.mkdref"),
    "mkrref": (_REFS, "mkrref", "pylightnix.refs.mkrref"),
    "trimhash": (_C, "trimhash", "hexdigest[:pylightnix.refs.HASH_LEN]"),
    "mkname": (_C, "mkname", "pylightnix.refs.parse_name"),
    # contexts
    "mkcontext": (_C, "mkcontext", "an empty dict {}"),
    "context_eq": (_C, "context_eq", "== of contexts with sorted RRef lists"),
    "context_add": (_C, "context_add", "{**ctx, dref: rrefs}"),
    "context_deref": (_C, "context_deref", "ctx[dref]"),
    "context_derefpath": (_C, "context_derefpath", "pylightnix.mklens(refpath, context=ctx)"),
    "context_serialize": (_C, "context_serialize", "pylightnix.hashing.context_json"),
    # configs
    "cfgdict": (_CFG, "config_dict", "pylightnix.config_dict"),
    "cfgcattrs": (_C, "cfgcattrs", "pylightnix.drefattrs / pylightnix.config.cfg_attrs"),
    "cfgserialize": (_C, "cfgserialize", "pylightnix.config.config_serialize"),
    "cfghash": (_CFG, "config_hash", "pylightnix.config_hash"),
    "cfgname": (_CFG, "config_name", "pylightnix.config_name"),
    "cfgdeps": (_CFG, "config_deps", "pylightnix.config_deps"),
    "cfgsp": (_C, "cfgsp", "pylightnix.config.config_promises"),
    "resolve": (_CFG, "resolve_selfrefs", "pylightnix.config.resolve_selfrefs"),
    "config_cattrs": (_C, "cfgcattrs", "pylightnix.config.cfg_attrs"),
    "config_serialize": (_C, "cfgserialize", "pylightnix.config.config_serialize"),
    "config_substitutePromises": (
        _C,
        "config_substitutePromises",
        "pylightnix.config.resolve_selfrefs",
    ),
    "config_promises": (_CFG, "config_promises", "pylightnix.config.config_promises"),
    "ConfigAttrs": (_CFG, "cfg_attrs", "pylightnix.config.cfg_attrs"),
    "PYLIGHTNIX_SELF_TAG": (_CFG, "selfref", "pylightnix.selfref"),
    "PYLIGHTNIX_PROMISE_TAG": (_CFG, "selfref", "pylightnix.selfref"),
    "PYLIGHTNIX_CLAIM_TAG": (_CFG, "selfref", "pylightnix.selfref"),
    "promise": (_CFG, "selfref", "pylightnix.selfref"),
    "claim": (_CFG, "selfref", "pylightnix.selfref"),
    "PYLIGHTNIX_NAMEPAT": (_C, "PYLIGHTNIX_NAMEPAT", "pylightnix.refs.is_name"),
    "PYLIGHTNIX_STORE_VERSION": (_SET, "STORE_VERSION", "pylightnix.store.settings.STORE_VERSION"),
    "PYLIGHTNIX_RESERVED": ("pylightnix.store.layout", "RESERVED", "the __pylightnix__ folder"),
    "PYLIGHTNIX_ROOT": (_SET, "fsroot()", "pylightnix.fsroot()"),
    "PYLIGHTNIX_STORE": (_SET, "fsstorage()", "pylightnix.fsstorage()"),
    "PYLIGHTNIX_TMP": (_SET, "fstmpdir()", "pylightnix.fstmpdir()"),
    # Output-typed callbacks and errors
    "Output": (_C, "Output", "plain lists of RRefs/paths"),
    "output_matcher": (_C, "output_matcher", "a matcher (S, rrefs) -> rrefs | None"),
    "output_realizer": (_C, "output_realizer", "a realizer returning a list of paths"),
    "output_validate": (_C, "output_validate", "promises are checked by the engine"),
    "PromiseException": ("pylightnix.errors", "PromiseError", "pylightnix.PromiseError"),
    "PylightnixException": ("pylightnix.errors", "PylightnixError", "pylightnix.PylightnixError"),
    "HashPart": ("pylightnix.types", "HashPart", "pylightnix.types.HashPart"),
    "Hash": ("builtins", "str", "str"),
    "SPath": ("pylightnix.types", "Path", "pylightnix.Path"),
    "Matcher": ("pylightnix.types", "Matcher", "pylightnix.types.Matcher"),
    "Realizer": ("pylightnix.types", "Realizer", "pylightnix.types.Realizer"),
    "Key": ("pylightnix.realize.matchers", "Key", "pylightnix.realize.matchers.Key"),
    "RealizeArg": ("builtins", "dict", "a Mapping[str, Any] (realize_args)"),
    # build helpers
    "BuildArgs": (_B, "BuildArgs", "pylightnix.Build"),
    "mkbuildargs": (_B, "mkbuildargs", "pylightnix.Build"),
    "mkbuild": ("pylightnix.realize.build", "mkbuild", "pylightnix.realize.build.mkbuild"),
    "build_markstart": (_B, "build_markstart", "build_wrapper(f, nouts=N)"),
    "build_setoutpaths": (_B, "build_setoutpaths", "build_wrapper(f, nouts=N)"),
    "build_markstop": (_B, "build_markstop", "nothing (the engine records build times)"),
    "build_markstop_noexcept": (_B, "build_markstop_noexcept", "nothing"),
    "build_environ": (_B, "build_environ", _HELPER),
    "repl_buildargs": (_B, "repl_buildargs", "pylightnix.repl_build"),
    "repl_cancelBuild": (_B, "repl_cancelBuild", "pylightnix.repl_cancel"),
    # registries, storage and store queries
    "Manager": ("pylightnix.realize.registry", "Registry", "pylightnix.Registry"),
    "mkregistry": (_C, "mkregistry", "pylightnix.Registry(S)"),
    "tlregistry": (_C, "tlregistry", "pylightnix.current_registry"),
    "setregistry": (_C, "setregistry", "with pylightnix.current_registry(r):"),
    "tlstorage": (_C, "tlstorage", "pylightnix.current_storage"),
    "setstorage": (_C, "setstorage", "with pylightnix.current_storage(S):"),
    "storagename": (_C, "storagename", "pylightnix.store.settings.STORE_VERSION"),
    "reserved": (_C, "reserved", "the __pylightnix__ folder of a realization"),
    "mkclosure": (_C, "mkclosure", "pylightnix.instantiate"),
    "instantiate_": (_C, "instantiate_", "pylightnix.instantiate(stage, r=r)"),
    "mkdrv_": (_C, "mkdrv_", "pylightnix.mkdrv"),
    "store_instantiate": (_C, "mkdrv_", "pylightnix.mkdrv"),
    "mkrealization": (_C, "mkrealization", "a realizer returning the folder"),
    "drefcfgpath": (_C, "drefcfgpath", "pylightnix.dref2path(d) + '/config.json'"),
    "store_cfgpath": (_C, "drefcfgpath", "pylightnix.dref2path(d) + '/config.json'"),
    "store_dref2path": (_Q, "store_dref2path", "pylightnix.dref2path"),
    "rrefpath2path": (_C, "rrefpath2path", "pylightnix.mklens(rref)...syspath"),
    "rrefbstop": (_C, "rrefbstop", "pylightnix.rrefmeta(rref)['build_stop']"),
    "rrefbdelta": (_C, "rrefbdelta", "pylightnix.rrefmeta(rref)"),
    "store_buildtime": (_C, "store_buildtime", "pylightnix.rrefbstart"),
    "store_buildelta": (_C, "rrefbdelta", "pylightnix.rrefmeta(rref)"),
    "store_config": (_C, "store_config", "pylightnix.drefcfg"),
    "store_config_": (_Q, "drefcfg_", "pylightnix.drefcfg_"),
    "store_cattrs": (_C, "store_cattrs", "pylightnix.drefattrs / pylightnix.rrefattrs"),
    "store_context": (_Q, "rrefctx", "pylightnix.rrefctx"),
    "store_deps": (_Q, "drefdeps1", "pylightnix.drefdeps1"),
    "store_deepdeps": (_Q, "drefdeps", "pylightnix.drefdeps"),
    "store_deepdepRrefs": (_Q, "rrefdeps", "pylightnix.rrefdeps"),
    "store_drefs": (_Q, "alldrefs", "pylightnix.alldrefs"),
    "store_rrefs_": (_Q, "drefrrefs", "pylightnix.drefrrefs"),
    "store_rrefs": (_Q, "drefrrefsC", "pylightnix.drefrrefsC"),
    "store_deref": (_C, "store_deref", "pylightnix.rrefctx(rref)[dref]"),
    "store_deref_": (_C, "store_deref_", "pylightnix.rrefctx(rref)[dref]"),
    "kahntsort": (_C, "kahntsort", "graphlib.TopologicalSorter"),
    "dagroots": (_C, "dagroots", "pylightnix.rootdrefs / pylightnix.rootrrefs"),
    # validation: this package's errors instead of AssertionError
    "assert_valid_name": (_C, "assert_valid_name", "pylightnix.refs.parse_name"),
    "assert_valid_dref": (_C, "assert_valid_dref", "pylightnix.parse_dref"),
    "assert_valid_rref": (_C, "assert_valid_rref", "pylightnix.parse_rref"),
    "assert_valid_hashpart": (_C, "assert_valid_hashpart", "pylightnix.refs.is_hashpart"),
    "assert_valid_hash": (_C, "assert_valid_hash", _HELPER),
    "assert_valid_refpath": (_C, "assert_valid_refpath", "pylightnix.config.is_refpath"),
    "assert_valid_config": (_C, "assert_valid_config", "pylightnix.mkconfig"),
    "assert_valid_dict": (_C, "assert_valid_dict", "pylightnix.mkconfig"),
    "assert_serializable": (_C, "assert_serializable", "pylightnix.mkconfig"),
    "assert_valid_context": (_C, "assert_valid_context", _HELPER),
    "assert_valid_closure": (_C, "assert_valid_closure", "isinstance(c, pylightnix.Closure)"),
    "assert_valid_storage": (_C, "assert_valid_storage", "pylightnix.fsinit"),
    "assert_store_initialized": (_C, "assert_store_initialized", "pylightnix.fsinit"),
    "assert_have_realizers": (_C, "assert_have_realizers", "pylightnix.instantiate (checks it)"),
    "assert_rref_deps": (_C, "assert_rref_deps", "pylightnix.mkdrv (checks configs)"),
    "warn_rref_deps": (_C, "assert_rref_deps", "pylightnix.mkdrv (checks configs)"),
    "assert_promise_fulfilled": (_C, "assert_promise_fulfilled", "the engine's promise check"),
    # files, time and hashing helpers
    "encode": (_U, "encode", "str.encode('utf-8')"),
    "dirshash": (_U, "dirshash", "pylightnix.hash_tree of each folder"),
    "datahash": (_U, "datahash", "hashlib.sha256"),
    "filehash": (_U, "filehash", "pylightnix.hashing.hash_file"),
    "dirhash": (_U, "dirhash", "pylightnix.hash_tree"),
    "dicthash": (_U, "dicthash", "pylightnix.canonical_json + hashlib.sha256"),
    "pyobjhash": (_U, "pyobjhash", "pylightnix.autostage.source_hash"),
    "timestring": (_LINKS, "timestring", "pylightnix.store.links.timestring"),
    "parsetime": (_LINKS, "parsetime", "pylightnix.store.links.parsetime"),
    "readstr": (_U, "readstr", "open(path).read()"),
    "writestr": (_U, "writestr", "open(path, 'w').write(s)"),
    "tryread": (_U, "tryreadstr", _HELPER),
    "tryread_def": (_U, "tryreadstr_def", _HELPER),
    "tryreadstr": (_U, "tryreadstr", _HELPER),
    "tryreadstr_def": (_U, "tryreadstr_def", _HELPER),
    "maybereadstr": (_U, "maybereadstr", _HELPER),
    "readjson": (_U, "readjson", "json.load"),
    "writejson": (_U, "writejson", "json.dump"),
    "tryreadjson": (_U, "tryreadjson", _HELPER),
    "tryreadjson_def": (_U, "tryreadjson_def", _HELPER),
    "maybereadjson": (_U, "maybereadjson", _HELPER),
    "trycatch": (_U, "trycatch", "try/except"),
    "trywrite": (_U, "trywrite", _HELPER),
    "forcelink": (_U, "forcelink", "pylightnix.linkrref"),
    "mklogdir": (_U, "mklogdir", _HELPER),
    "dirsize": (_U, "dirsize", "pylightnix.du"),
    "dirrm": (_U, "dirrm", "pylightnix.rmref (store objects)"),
    "dircp": (_U, "dircp", "shutil.copytree"),
    "filero": (_U, "filero", "pylightnix.dirro"),
    "filerw": (_U, "filerw", "pylightnix.dirrw"),
    "dirchmod": (_U, "dirchmod", "pylightnix.dirro / pylightnix.dirrw"),
    "concat": (_U, "concat", "itertools.chain"),
    "try_executable": (_U, "try_executable", "shutil.which"),
    "get_executable": (_U, "get_executable", "shutil.which"),
    "traverse_dict": (_U, "traverse_dict", _HELPER),
    "traverse_list": (_U, "traverse_list", _HELPER),
    "traverse_tuple": (_U, "traverse_tuple", _HELPER),
    "scanref_dict": (_U, "scanref_dict", "pylightnix.config_deps"),
    "scanref_list": (_U, "scanref_list", "pylightnix.config_deps"),
    # REPL
    "ReplHelper": ("pylightnix.repl", "ReplSession", "pylightnix.ReplSession"),
    "repl_continue1": (_R, "repl_continue1", "pylightnix.repl_continue + repl_rref"),
    "repl_continueMany": (_R, "repl_continueMany", "pylightnix.repl_continue + repl_rrefs"),
    "repl_continueAll": (_R, "repl_continueMany", "pylightnix.repl_continue + repl_rrefs"),
    # Either
    "Either": (_E, "Either", "pylightnix.realizeE and pylightnix.Failure"),
    "mkright": (_E, "mkright", "pylightnix.realizeE"),
    "mkleft": (_E, "mkleft", "pylightnix.realizeE"),
    "either_isRight": (_E, "either_isRight", "not pylightnix.is_failed(rref)"),
    "either_isLeft": (_E, "either_isLeft", "pylightnix.is_failed(rref)"),
    "either_paths": (_E, "either_paths", "pylightnix.realizeE"),
    "either_status": (_E, "either_status", "pylightnix.rref_failure"),
    "either_loadR": (_E, "either_loadR", "pylightnix.rref_failure"),
    "either_realizer": (_E, "either_realizer", "pylightnix.mkdrvE"),
    "either_validate": (_E, "either_validate", "the engine's promise check"),
    "either_matcher": (_E, "either_matcher", "pylightnix.mkdrvE"),
    "realizeManyE": (_E, "realizeManyE", "pylightnix.realizeE"),
    # stages, archives, GC, autostage
    "fetchurl2": (_F, "fetchurl2", "pylightnix.fetchurl(url, mode='as-is')"),
    "unpack": (_F, "unpack", "pylightnix.unpackref"),
    "spack": (_A, "spack", "pylightnix.export_closure"),
    "sunpack": (_A, "sunpack", "pylightnix.import_closure"),
    "deref_": (_A, "deref_", "pylightnix.rrefctx(rref)[dref]"),
    "diskspace_h": (_G, "diskspace_h", _HELPER),
    "gc_exceptions": (_G, "gc_exceptions", "pylightnix.gc (result links are roots)"),
    "gc_candidates": (_G, "gc_candidates", "pylightnix.gc(dry_run=True)"),
    "autodrv": (_D, "autodrv", "pylightnix.autostage"),
    "realizeU": (_D, "realizeU", "pylightnix.realize1 + pylightnix.rrefattrs"),
    "Attrs": ("pylightnix.autostage", "StageAttrs", "pylightnix.StageAttrs"),
    "latest": (_S, "latest", "pylightnix.match_latest"),
    "best": (_S, "best", "pylightnix.match_best"),
    "exact": (_S, "exact", "pylightnix.match_exact"),
    "texthash": (_S, "texthash", "pylightnix.match (ties are broken by RRef)"),
    "match_n": (_S, "match_n", "pylightnix.match_some / pylightnix.match"),
    "lsrref": (_S, "lsrref", "pylightnix.lsref / pylightnix.rref_files"),
    "lsdref_": (_S, "lsdref_", "pylightnix.lsref"),
    "lsrref_": (_S, "lsrref", "pylightnix.lsref / pylightnix.rref_files"),
    "catrref_": (_S, "catrref_", "pylightnix.catref"),
    "mksymlink": (_S, "mksymlink", "pylightnix.linkrref"),
}

_TYPING = (
    "Any Callable Dict Generator IO Iterable Iterator List NamedTuple Optional Set Tuple "
    "TypeVar Union"
)
_STDLIB_SPEC = {
    "typing": _TYPING,
    "functools": "partial",
    "copy": "deepcopy",
    "collections": "OrderedDict defaultdict",
    "os": "chmod environ listdir lstat makedirs mkdir readlink remove rename replace rmdir "
    "symlink walk",
    "os.path": "abspath basename dirname getsize isdir isfile islink join relpath split",
    "stat": "S_IREAD S_IRGRP S_IROTH S_IWGRP S_IWOTH S_IWRITE S_IXGRP S_IXOTH S_IXUSR ST_MODE",
    "errno": "EEXIST ENOTEMPTY",
    "hashlib": "sha256",
    "tempfile": "mkdtemp",
    "shutil": "copyfile rmtree",
    "unicodedata": "normalize",
    "subprocess": "Popen",
    "urllib.parse": "urlparse",
    "threading": "get_ident",
    "contextlib": "contextmanager",
    "datetime": "datetime",
    "fnmatch": "fnmatch",
    "calendar": "timegm",
    "time": "gmtime strftime strptime",
}
STDLIB: dict[str, tuple[str, str]] = {
    name: (mod, name) for mod, names in _STDLIB_SPEC.items() for name in names.split()
}
STDLIB.update(
    {
        "json_loads": ("json", "loads"),
        "json_dumps": ("json", "dumps"),
        "json_load": ("json", "load"),
        "json_dump": ("json", "dump"),
        "re_sub": ("re", "sub"),
        "re_match": ("re", "match"),
        "maxsize": ("sys", "maxsize"),
        "find_executable": ("shutil", "which"),
    }
)
"""Standard-library names the original re-exported through ``from pylightnix import *``
(``from pylightnix import partial, Tuple``): name -> (module, attribute)."""

GONE: dict[str, str] = {
    name: why
    for why, names in {
        "output tags and groups were removed by the original itself in 0.3; "
        "a realizer returns one folder per output": (
            "Tag",
            "Group",
            "RRefGroup",
            "mktag",
            "mkgroup",
            "rrefs2groups",
            "groups2rrefs",
            "store_tag",
            "store_group",
            "build_setoutgroups",
            "store_realize_tag",
            "store_realize_group",
        ),
        "there is no global recursion stack: a Registry refuses nested instantiate()": (
            "recursion_manager",
            "assert_recursion_manager_empty",
            "PYLIGHTNIX_RECURSION",
        ),
        "global mutable state was removed: use instantiate_inplace/realize_inplace "
        "(one registry per store) and the REPL session objects": (
            "PYLIGHTNIX_MANAGER",
            "PYLIGHTNIX_REPL_HELPER",
        ),
        "no external tools: downloads, archives and unpacking are done in Python": (
            "WGET",
            "CURL",
            "AUNPACK",
            "APACK",
        ),
        "autostage calls the function with StageAttrs itself; there is no "
        "separate unrolling step": ("unroll", "unrollR", "wrapsig", "autostage_", "autodrv_"),
        "the Lens walks configs itself; use mklens(x) attributes (.val, .syspath, .rref)": (
            "LensContext",
            "val2dict",
            "val2path",
            "val2rref",
            "traverse",
            "mutate",
            "lens_repr",
        ),
        "realize steps are not a public generator; the REPL (repl_realize) pauses them": (
            "realizeSeq",
        ),
        "defaults are context variables, not a thread-local object: use current_registry, "
        "current_storage": ("TL",),
        "the tree hash streams files itself: use hash_tree": ("dirhash_iter",),
        "use mklogdir": ("logdir",),
    }.items()
    for name in names
}


def _load(name: str) -> Any:
    mod, attr, _ = LEGACY[name]
    m = importlib.import_module(mod)
    if attr.endswith("()"):
        f: Callable[[], Any] = getattr(m, attr[:-2])
        return f()
    return getattr(m, attr)


def lookup(module: str, name: str) -> Any:
    """The value of the original's name ``name`` (looked up in ``module``), with a
    :class:`DeprecationWarning` naming the new spelling.

    Raises:
        AttributeError: ``name`` is not a name of the original (or has no counterpart:
            the message says why).
    """
    if name in LEGACY:
        new = LEGACY[name][2]
        warnings.warn(
            f"{module}.{name} is a name of the original Pylightnix; in this package: {new} "
            "(see docs/migrating.md)",
            DeprecationWarning,
            stacklevel=3,
        )
        return _load(name)
    if name in STDLIB:
        mod, attr = STDLIB[name]
        warnings.warn(
            f"{module}.{name} was the original Pylightnix's re-export of {mod}.{attr}: "
            f"import it from {mod} (see docs/migrating.md)",
            DeprecationWarning,
            stacklevel=3,
        )
        return getattr(importlib.import_module(mod), attr)
    if name in GONE:
        raise AttributeError(
            f"module {module!r} has no attribute {name!r}: the original's {name} has no "
            f"counterpart ({GONE[name]}; see docs/migrating.md)"
        )
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def module_getattr(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the original's module ``module``: its names are the
    legacy names and this package's public API (each use warns)."""

    def getattr_(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if name not in LEGACY:
            import pylightnix

            if name in pylightnix.__all__:
                warnings.warn(
                    f"{module} is a module of the original Pylightnix; in this package: "
                    f"pylightnix.{name} (see docs/migrating.md)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(pylightnix, name)
        return lookup(module, name)

    return getattr_
