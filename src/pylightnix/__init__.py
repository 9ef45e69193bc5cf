"""pylightnix: immutable, content-addressed, dependency-linked data objects on a filesystem store.

The public API is re-exported here explicitly; ``__all__`` is checked by a test.
"""

TYPE_CHECKING = False
"""True only for type checkers (mypy reads the imports below; Python skips them)."""

if TYPE_CHECKING:
    from pylightnix.autostage import AutoStage as AutoStage
    from pylightnix.autostage import StageAttrs as StageAttrs
    from pylightnix.autostage import autostage as autostage
    from pylightnix.config import Config as Config
    from pylightnix.config import RConfig as RConfig
    from pylightnix.config import canonical_json as canonical_json
    from pylightnix.config import config_deps as config_deps
    from pylightnix.config import config_dict as config_dict
    from pylightnix.config import config_hash as config_hash
    from pylightnix.config import config_name as config_name
    from pylightnix.config import mkconfig as mkconfig
    from pylightnix.config import mkrefpath as mkrefpath
    from pylightnix.config import selfref as selfref
    from pylightnix.errors import ArchiveError as ArchiveError
    from pylightnix.errors import BuildError as BuildError
    from pylightnix.errors import BuildsFailedError as BuildsFailedError
    from pylightnix.errors import ClusterError as ClusterError
    from pylightnix.errors import ConfigError as ConfigError
    from pylightnix.errors import ExtraMissingError as ExtraMissingError
    from pylightnix.errors import FetchError as FetchError
    from pylightnix.errors import HashMismatchError as HashMismatchError
    from pylightnix.errors import InstantiateError as InstantiateError
    from pylightnix.errors import IntegrityError as IntegrityError
    from pylightnix.errors import InUseError as InUseError
    from pylightnix.errors import LensError as LensError
    from pylightnix.errors import LockError as LockError
    from pylightnix.errors import MatcherError as MatcherError
    from pylightnix.errors import NotRealizedError as NotRealizedError
    from pylightnix.errors import OptionError as OptionError
    from pylightnix.errors import PromiseError as PromiseError
    from pylightnix.errors import PylightnixError as PylightnixError
    from pylightnix.errors import RealizeError as RealizeError
    from pylightnix.errors import RefError as RefError
    from pylightnix.errors import RemoteError as RemoteError
    from pylightnix.errors import ReplError as ReplError
    from pylightnix.errors import RequestError as RequestError
    from pylightnix.errors import StoreError as StoreError
    from pylightnix.errors import StoreVersionError as StoreVersionError
    from pylightnix.errors import TrustError as TrustError
    from pylightnix.errors import UnpackLimitError as UnpackLimitError
    from pylightnix.errors import UnsafeArchiveError as UnsafeArchiveError
    from pylightnix.errors import UpgradeError as UpgradeError
    from pylightnix.hashing import hash_tree as hash_tree
    from pylightnix.inplace import inplace_registry as inplace_registry
    from pylightnix.inplace import inplace_reset as inplace_reset
    from pylightnix.inplace import instantiate_inplace as instantiate_inplace
    from pylightnix.inplace import realize_inplace as realize_inplace
    from pylightnix.inplace import realizeMany_inplace as realizeMany_inplace
    from pylightnix.lens import Lens as Lens
    from pylightnix.lens import mklens as mklens
    from pylightnix.progress import ProgressEvent as ProgressEvent
    from pylightnix.progress import progress_hook as progress_hook
    from pylightnix.progress import set_progress_hook as set_progress_hook
    from pylightnix.realize.build import Build as Build
    from pylightnix.realize.build import build_cattrs as build_cattrs
    from pylightnix.realize.build import build_config as build_config
    from pylightnix.realize.build import build_context as build_context
    from pylightnix.realize.build import build_deref as build_deref
    from pylightnix.realize.build import build_deref_ as build_deref_
    from pylightnix.realize.build import build_name as build_name
    from pylightnix.realize.build import build_outpath as build_outpath
    from pylightnix.realize.build import build_outpaths as build_outpaths
    from pylightnix.realize.build import build_path as build_path
    from pylightnix.realize.build import build_paths as build_paths
    from pylightnix.realize.build import build_wrapper as build_wrapper
    from pylightnix.realize.build import build_wrapper_ as build_wrapper_
    from pylightnix.realize.build import dirro as dirro
    from pylightnix.realize.build import dirrw as dirrw
    from pylightnix.realize.buildlog import rreflog as rreflog
    from pylightnix.realize.engine import evaluate as evaluate
    from pylightnix.realize.engine import realize as realize
    from pylightnix.realize.engine import realize1 as realize1
    from pylightnix.realize.engine import realizeMany as realizeMany
    from pylightnix.realize.explain import Explanation as Explanation
    from pylightnix.realize.explain import explain as explain
    from pylightnix.realize.failures import Failure as Failure
    from pylightnix.realize.failures import drefrrefs_failed as drefrrefs_failed
    from pylightnix.realize.failures import is_failed as is_failed
    from pylightnix.realize.failures import mkdrvE as mkdrvE
    from pylightnix.realize.failures import realizeE as realizeE
    from pylightnix.realize.failures import rref_failure as rref_failure
    from pylightnix.realize.matchers import match as match
    from pylightnix.realize.matchers import match_all as match_all
    from pylightnix.realize.matchers import match_best as match_best
    from pylightnix.realize.matchers import match_exact as match_exact
    from pylightnix.realize.matchers import match_latest as match_latest
    from pylightnix.realize.matchers import match_only as match_only
    from pylightnix.realize.matchers import match_some as match_some
    from pylightnix.realize.registry import Closure as Closure
    from pylightnix.realize.registry import Derivation as Derivation
    from pylightnix.realize.registry import Registry as Registry
    from pylightnix.realize.registry import current_registry as current_registry
    from pylightnix.realize.registry import instantiate as instantiate
    from pylightnix.realize.registry import mkdrv as mkdrv
    from pylightnix.refs import is_dref as is_dref
    from pylightnix.refs import is_rref as is_rref
    from pylightnix.refs import parse_dref as parse_dref
    from pylightnix.refs import parse_rref as parse_rref
    from pylightnix.refs import rref2dref as rref2dref
    from pylightnix.remote import Remote as Remote
    from pylightnix.remote import TransferResult as TransferResult
    from pylightnix.remote import generate_key as generate_key
    from pylightnix.remote import open_remote as open_remote
    from pylightnix.remote import pull as pull
    from pylightnix.remote import push as push
    from pylightnix.repl import ReplSession as ReplSession
    from pylightnix.repl import repl_build as repl_build
    from pylightnix.repl import repl_cancel as repl_cancel
    from pylightnix.repl import repl_continue as repl_continue
    from pylightnix.repl import repl_continueBuild as repl_continueBuild
    from pylightnix.repl import repl_realize as repl_realize
    from pylightnix.repl import repl_result as repl_result
    from pylightnix.repl import repl_rref as repl_rref
    from pylightnix.repl import repl_rrefs as repl_rrefs
    from pylightnix.runs import Run as Run
    from pylightnix.runs import runs as runs
    from pylightnix.stages.diff import diff as diff
    from pylightnix.stages.fetch import fetchlocal as fetchlocal
    from pylightnix.stages.fetch import fetchurl as fetchurl
    from pylightnix.stages.fetch import unpackref as unpackref
    from pylightnix.stages.trivial import mkfile as mkfile
    from pylightnix.stages.trivial import mknode as mknode
    from pylightnix.stages.trivial import realized as realized
    from pylightnix.stages.trivial import redefine as redefine
    from pylightnix.store.archive import copyclosure as copyclosure
    from pylightnix.store.archive import export_closure as export_closure
    from pylightnix.store.archive import import_closure as import_closure
    from pylightnix.store.gc import GCResult as GCResult
    from pylightnix.store.gc import GCRoot as GCRoot
    from pylightnix.store.gc import gc as gc
    from pylightnix.store.gc import store_gc as store_gc
    from pylightnix.store.init import fsinit as fsinit
    from pylightnix.store.init import store_initialize as store_initialize
    from pylightnix.store.inspect import Artifact as Artifact
    from pylightnix.store.inspect import ConfigDiff as ConfigDiff
    from pylightnix.store.inspect import DiskUsage as DiskUsage
    from pylightnix.store.inspect import FilesDiff as FilesDiff
    from pylightnix.store.inspect import catref as catref
    from pylightnix.store.inspect import closure_sizes as closure_sizes
    from pylightnix.store.inspect import config_diff as config_diff
    from pylightnix.store.inspect import du as du
    from pylightnix.store.inspect import files_diff as files_diff
    from pylightnix.store.inspect import find as find
    from pylightnix.store.inspect import lsref as lsref
    from pylightnix.store.inspect import rref_files as rref_files
    from pylightnix.store.inspect import shell as shell
    from pylightnix.store.inspect import shellref as shellref
    from pylightnix.store.links import linkdref as linkdref
    from pylightnix.store.links import linkrref as linkrref
    from pylightnix.store.links import linkrrefs as linkrrefs
    from pylightnix.store.links import unlinkrref as unlinkrref
    from pylightnix.store.migrate import MigrateResult as MigrateResult
    from pylightnix.store.migrate import migrate_store as migrate_store
    from pylightnix.store.query import alldrefs as alldrefs
    from pylightnix.store.query import allrrefs as allrrefs
    from pylightnix.store.query import drefattrs as drefattrs
    from pylightnix.store.query import drefcfg as drefcfg
    from pylightnix.store.query import drefcfg_ as drefcfg_
    from pylightnix.store.query import drefdeps as drefdeps
    from pylightnix.store.query import drefdeps1 as drefdeps1
    from pylightnix.store.query import drefrrefs as drefrrefs
    from pylightnix.store.query import drefrrefsC as drefrrefsC
    from pylightnix.store.query import path2dref as path2dref
    from pylightnix.store.query import path2rref as path2rref
    from pylightnix.store.query import rootdrefs as rootdrefs
    from pylightnix.store.query import rootrrefs as rootrrefs
    from pylightnix.store.query import rref2path as rref2path
    from pylightnix.store.query import rrefattrs as rrefattrs
    from pylightnix.store.query import rrefbstart as rrefbstart
    from pylightnix.store.query import rrefctx as rrefctx
    from pylightnix.store.query import rrefdata as rrefdata
    from pylightnix.store.query import rrefdeps as rrefdeps
    from pylightnix.store.query import rrefdeps1 as rrefdeps1
    from pylightnix.store.query import rrefmeta as rrefmeta
    from pylightnix.store.query import store_dref2path as dref2path
    from pylightnix.store.query import store_reindex as store_reindex
    from pylightnix.store.remove import rmref as rmref
    from pylightnix.store.settings import StorageSettings as StorageSettings
    from pylightnix.store.settings import current_storage as current_storage
    from pylightnix.store.settings import fsroot as fsroot
    from pylightnix.store.settings import fsstorage as fsstorage
    from pylightnix.store.settings import fstmpdir as fstmpdir
    from pylightnix.store.settings import mkSS as mkSS
    from pylightnix.store.temproots import add_temproots as add_temproots
    from pylightnix.store.temproots import release_temproots as release_temproots
    from pylightnix.store.upgrade import UpgradeResult as UpgradeResult
    from pylightnix.store.upgrade import upgrade_store as upgrade_store
    from pylightnix.store.verify import DamagedRealization as DamagedRealization
    from pylightnix.store.verify import VerifyResult as VerifyResult
    from pylightnix.store.verify import verify as verify
    from pylightnix.types import Context as Context
    from pylightnix.types import DRef as DRef
    from pylightnix.types import Name as Name
    from pylightnix.types import Path as Path
    from pylightnix.types import RefPath as RefPath
    from pylightnix.types import RRef as RRef
    from pylightnix.unpack import UnpackLimits as UnpackLimits
    from pylightnix.unpack import safe_extract as safe_extract
    from pylightnix.unpack import unpack_limits as unpack_limits

# Lazily loaded re-exports (issue 15, start-up): ``import pylightnix`` loads
# no submodule; a public name imports its module on first use. The
# TYPE_CHECKING imports above are the same names for type checkers;
# tests/test_exports.py checks that both lists agree.
_LAZY: dict[str, str] = {
    "ArchiveError": "pylightnix.errors",
    "Artifact": "pylightnix.store.inspect",
    "AutoStage": "pylightnix.autostage",
    "Build": "pylightnix.realize.build",
    "BuildError": "pylightnix.errors",
    "BuildsFailedError": "pylightnix.errors",
    "Closure": "pylightnix.realize.registry",
    "ClusterError": "pylightnix.errors",
    "Config": "pylightnix.config",
    "ConfigDiff": "pylightnix.store.inspect",
    "ConfigError": "pylightnix.errors",
    "Context": "pylightnix.types",
    "DRef": "pylightnix.types",
    "DamagedRealization": "pylightnix.store.verify",
    "Derivation": "pylightnix.realize.registry",
    "DiskUsage": "pylightnix.store.inspect",
    "Explanation": "pylightnix.realize.explain",
    "ExtraMissingError": "pylightnix.errors",
    "Failure": "pylightnix.realize.failures",
    "FetchError": "pylightnix.errors",
    "FilesDiff": "pylightnix.store.inspect",
    "GCResult": "pylightnix.store.gc",
    "GCRoot": "pylightnix.store.gc",
    "HashMismatchError": "pylightnix.errors",
    "InUseError": "pylightnix.errors",
    "InstantiateError": "pylightnix.errors",
    "IntegrityError": "pylightnix.errors",
    "Lens": "pylightnix.lens",
    "LensError": "pylightnix.errors",
    "LockError": "pylightnix.errors",
    "MatcherError": "pylightnix.errors",
    "MigrateResult": "pylightnix.store.migrate",
    "Name": "pylightnix.types",
    "NotRealizedError": "pylightnix.errors",
    "OptionError": "pylightnix.errors",
    "Path": "pylightnix.types",
    "ProgressEvent": "pylightnix.progress",
    "PromiseError": "pylightnix.errors",
    "PylightnixError": "pylightnix.errors",
    "RConfig": "pylightnix.config",
    "RRef": "pylightnix.types",
    "RealizeError": "pylightnix.errors",
    "RefError": "pylightnix.errors",
    "RefPath": "pylightnix.types",
    "Registry": "pylightnix.realize.registry",
    "Remote": "pylightnix.remote",
    "RemoteError": "pylightnix.errors",
    "ReplError": "pylightnix.errors",
    "ReplSession": "pylightnix.repl",
    "RequestError": "pylightnix.errors",
    "Run": "pylightnix.runs",
    "StageAttrs": "pylightnix.autostage",
    "StorageSettings": "pylightnix.store.settings",
    "StoreError": "pylightnix.errors",
    "StoreVersionError": "pylightnix.errors",
    "TransferResult": "pylightnix.remote",
    "TrustError": "pylightnix.errors",
    "UnpackLimitError": "pylightnix.errors",
    "UnpackLimits": "pylightnix.unpack",
    "UnsafeArchiveError": "pylightnix.errors",
    "UpgradeError": "pylightnix.errors",
    "UpgradeResult": "pylightnix.store.upgrade",
    "VerifyResult": "pylightnix.store.verify",
    "add_temproots": "pylightnix.store.temproots",
    "alldrefs": "pylightnix.store.query",
    "allrrefs": "pylightnix.store.query",
    "autostage": "pylightnix.autostage",
    "build_cattrs": "pylightnix.realize.build",
    "build_config": "pylightnix.realize.build",
    "build_context": "pylightnix.realize.build",
    "build_deref": "pylightnix.realize.build",
    "build_deref_": "pylightnix.realize.build",
    "build_name": "pylightnix.realize.build",
    "build_outpath": "pylightnix.realize.build",
    "build_outpaths": "pylightnix.realize.build",
    "build_path": "pylightnix.realize.build",
    "build_paths": "pylightnix.realize.build",
    "build_wrapper": "pylightnix.realize.build",
    "build_wrapper_": "pylightnix.realize.build",
    "canonical_json": "pylightnix.config",
    "catref": "pylightnix.store.inspect",
    "closure_sizes": "pylightnix.store.inspect",
    "config_deps": "pylightnix.config",
    "config_dict": "pylightnix.config",
    "config_diff": "pylightnix.store.inspect",
    "config_hash": "pylightnix.config",
    "config_name": "pylightnix.config",
    "copyclosure": "pylightnix.store.archive",
    "current_registry": "pylightnix.realize.registry",
    "current_storage": "pylightnix.store.settings",
    "diff": "pylightnix.stages.diff",
    "dirro": "pylightnix.realize.build",
    "dirrw": "pylightnix.realize.build",
    "dref2path": "pylightnix.store.query:store_dref2path",
    "drefattrs": "pylightnix.store.query",
    "drefcfg": "pylightnix.store.query",
    "drefcfg_": "pylightnix.store.query",
    "drefdeps": "pylightnix.store.query",
    "drefdeps1": "pylightnix.store.query",
    "drefrrefs": "pylightnix.store.query",
    "drefrrefsC": "pylightnix.store.query",
    "drefrrefs_failed": "pylightnix.realize.failures",
    "du": "pylightnix.store.inspect",
    "evaluate": "pylightnix.realize.engine",
    "explain": "pylightnix.realize.explain",
    "export_closure": "pylightnix.store.archive",
    "fetchlocal": "pylightnix.stages.fetch",
    "fetchurl": "pylightnix.stages.fetch",
    "files_diff": "pylightnix.store.inspect",
    "find": "pylightnix.store.inspect",
    "fsinit": "pylightnix.store.init",
    "fsroot": "pylightnix.store.settings",
    "fsstorage": "pylightnix.store.settings",
    "fstmpdir": "pylightnix.store.settings",
    "gc": "pylightnix.store.gc",
    "generate_key": "pylightnix.remote",
    "hash_tree": "pylightnix.hashing",
    "import_closure": "pylightnix.store.archive",
    "inplace_registry": "pylightnix.inplace",
    "inplace_reset": "pylightnix.inplace",
    "instantiate": "pylightnix.realize.registry",
    "instantiate_inplace": "pylightnix.inplace",
    "is_dref": "pylightnix.refs",
    "is_failed": "pylightnix.realize.failures",
    "is_rref": "pylightnix.refs",
    "linkdref": "pylightnix.store.links",
    "linkrref": "pylightnix.store.links",
    "linkrrefs": "pylightnix.store.links",
    "lsref": "pylightnix.store.inspect",
    "match": "pylightnix.realize.matchers",
    "match_all": "pylightnix.realize.matchers",
    "match_best": "pylightnix.realize.matchers",
    "match_exact": "pylightnix.realize.matchers",
    "match_latest": "pylightnix.realize.matchers",
    "match_only": "pylightnix.realize.matchers",
    "match_some": "pylightnix.realize.matchers",
    "migrate_store": "pylightnix.store.migrate",
    "mkSS": "pylightnix.store.settings",
    "mkconfig": "pylightnix.config",
    "mkdrv": "pylightnix.realize.registry",
    "mkdrvE": "pylightnix.realize.failures",
    "mkfile": "pylightnix.stages.trivial",
    "mklens": "pylightnix.lens",
    "mknode": "pylightnix.stages.trivial",
    "mkrefpath": "pylightnix.config",
    "open_remote": "pylightnix.remote",
    "parse_dref": "pylightnix.refs",
    "parse_rref": "pylightnix.refs",
    "path2dref": "pylightnix.store.query",
    "path2rref": "pylightnix.store.query",
    "progress_hook": "pylightnix.progress",
    "pull": "pylightnix.remote",
    "push": "pylightnix.remote",
    "realize": "pylightnix.realize.engine",
    "realize1": "pylightnix.realize.engine",
    "realizeE": "pylightnix.realize.failures",
    "realizeMany": "pylightnix.realize.engine",
    "realizeMany_inplace": "pylightnix.inplace",
    "realize_inplace": "pylightnix.inplace",
    "realized": "pylightnix.stages.trivial",
    "redefine": "pylightnix.stages.trivial",
    "release_temproots": "pylightnix.store.temproots",
    "repl_build": "pylightnix.repl",
    "repl_cancel": "pylightnix.repl",
    "repl_continue": "pylightnix.repl",
    "repl_continueBuild": "pylightnix.repl",
    "repl_realize": "pylightnix.repl",
    "repl_result": "pylightnix.repl",
    "repl_rref": "pylightnix.repl",
    "repl_rrefs": "pylightnix.repl",
    "rmref": "pylightnix.store.remove",
    "rootdrefs": "pylightnix.store.query",
    "rootrrefs": "pylightnix.store.query",
    "rref2dref": "pylightnix.refs",
    "rref2path": "pylightnix.store.query",
    "rref_failure": "pylightnix.realize.failures",
    "rref_files": "pylightnix.store.inspect",
    "rrefattrs": "pylightnix.store.query",
    "rrefbstart": "pylightnix.store.query",
    "rrefctx": "pylightnix.store.query",
    "rrefdata": "pylightnix.store.query",
    "rrefdeps": "pylightnix.store.query",
    "rrefdeps1": "pylightnix.store.query",
    "rreflog": "pylightnix.realize.buildlog",
    "rrefmeta": "pylightnix.store.query",
    "runs": "pylightnix.runs",
    "safe_extract": "pylightnix.unpack",
    "selfref": "pylightnix.config",
    "set_progress_hook": "pylightnix.progress",
    "shell": "pylightnix.store.inspect",
    "shellref": "pylightnix.store.inspect",
    "store_gc": "pylightnix.store.gc",
    "store_initialize": "pylightnix.store.init",
    "store_reindex": "pylightnix.store.query",
    "unlinkrref": "pylightnix.store.links",
    "unpack_limits": "pylightnix.unpack",
    "unpackref": "pylightnix.stages.fetch",
    "upgrade_store": "pylightnix.store.upgrade",
    "verify": "pylightnix.store.verify",
}
"""Public name -> ``module`` or ``module:attribute`` it is loaded from."""


def __getattr__(name: str) -> object:
    target = _LAZY.get(name)
    if target is None:
        # The original Pylightnix's names resolve lazily with a DeprecationWarning
        # (they stay out of ``__all__``; table: :mod:`pylightnix.legacy`).
        from pylightnix.legacy import lookup

        return lookup(__name__, name)
    import importlib

    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _keep_public_names() -> None:
    """Keep ``pylightnix.realize`` / ``pylightnix.autostage`` the functions, not the submodules.

    Importing a submodule sets it as an attribute of its parent package;
    with eager re-exports the function assigned afterwards won, so the
    facade ignores those assignments for names it exports (``import
    pylightnix.realize.engine`` still works: it goes through
    ``sys.modules``).
    """
    import sys

    class _Facade(type(sys)):  # type: ignore[misc]
        def __setattr__(self, name: str, value: object) -> None:
            if name in _LAZY and isinstance(value, type(sys)):
                return
            super().__setattr__(name, value)

    sys.modules[__name__].__class__ = _Facade


_keep_public_names()


__version__ = "1.0.0.dev0"

__all__ = [
    "ArchiveError",
    "Artifact",
    "AutoStage",
    "Build",
    "BuildError",
    "BuildsFailedError",
    "Closure",
    "ClusterError",
    "Config",
    "ConfigDiff",
    "ConfigError",
    "Context",
    "DRef",
    "DamagedRealization",
    "Derivation",
    "DiskUsage",
    "Explanation",
    "ExtraMissingError",
    "Failure",
    "FetchError",
    "FilesDiff",
    "GCResult",
    "GCRoot",
    "HashMismatchError",
    "InUseError",
    "InstantiateError",
    "IntegrityError",
    "Lens",
    "LensError",
    "LockError",
    "MatcherError",
    "MigrateResult",
    "Name",
    "NotRealizedError",
    "OptionError",
    "Path",
    "ProgressEvent",
    "PromiseError",
    "PylightnixError",
    "RConfig",
    "RRef",
    "RealizeError",
    "RefError",
    "RefPath",
    "Registry",
    "Remote",
    "RemoteError",
    "ReplError",
    "ReplSession",
    "RequestError",
    "Run",
    "StageAttrs",
    "StorageSettings",
    "StoreError",
    "StoreVersionError",
    "TransferResult",
    "TrustError",
    "UnpackLimitError",
    "UnpackLimits",
    "UnsafeArchiveError",
    "UpgradeError",
    "UpgradeResult",
    "VerifyResult",
    "add_temproots",
    "alldrefs",
    "allrrefs",
    "autostage",
    "build_cattrs",
    "build_config",
    "build_context",
    "build_deref",
    "build_deref_",
    "build_name",
    "build_outpath",
    "build_outpaths",
    "build_path",
    "build_paths",
    "build_wrapper",
    "build_wrapper_",
    "canonical_json",
    "catref",
    "closure_sizes",
    "config_deps",
    "config_dict",
    "config_diff",
    "config_hash",
    "config_name",
    "copyclosure",
    "current_registry",
    "current_storage",
    "diff",
    "dirro",
    "dirrw",
    "dref2path",
    "drefattrs",
    "drefcfg",
    "drefcfg_",
    "drefdeps",
    "drefdeps1",
    "drefrrefs",
    "drefrrefsC",
    "drefrrefs_failed",
    "du",
    "evaluate",
    "explain",
    "export_closure",
    "fetchlocal",
    "fetchurl",
    "files_diff",
    "find",
    "fsinit",
    "fsroot",
    "fsstorage",
    "fstmpdir",
    "gc",
    "generate_key",
    "hash_tree",
    "import_closure",
    "inplace_registry",
    "inplace_reset",
    "instantiate",
    "instantiate_inplace",
    "is_dref",
    "is_failed",
    "is_rref",
    "linkdref",
    "linkrref",
    "linkrrefs",
    "lsref",
    "match",
    "match_all",
    "match_best",
    "match_exact",
    "match_latest",
    "match_only",
    "match_some",
    "migrate_store",
    "mkSS",
    "mkconfig",
    "mkdrv",
    "mkdrvE",
    "mkfile",
    "mklens",
    "mknode",
    "mkrefpath",
    "open_remote",
    "parse_dref",
    "parse_rref",
    "path2dref",
    "path2rref",
    "progress_hook",
    "pull",
    "push",
    "realize",
    "realize1",
    "realizeE",
    "realizeMany",
    "realizeMany_inplace",
    "realize_inplace",
    "realized",
    "redefine",
    "release_temproots",
    "repl_build",
    "repl_cancel",
    "repl_continue",
    "repl_continueBuild",
    "repl_realize",
    "repl_result",
    "repl_rref",
    "repl_rrefs",
    "rmref",
    "rootdrefs",
    "rootrrefs",
    "rref2dref",
    "rref2path",
    "rref_failure",
    "rref_files",
    "rrefattrs",
    "rrefbstart",
    "rrefctx",
    "rrefdata",
    "rrefdeps",
    "rrefdeps1",
    "rreflog",
    "rrefmeta",
    "runs",
    "safe_extract",
    "selfref",
    "set_progress_hook",
    "shell",
    "shellref",
    "store_gc",
    "store_initialize",
    "store_reindex",
    "unlinkrref",
    "unpack_limits",
    "unpackref",
    "upgrade_store",
    "verify",
]
