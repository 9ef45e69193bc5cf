"""One derivation's realization step (steps 2-4 of the algorithm in ``engine.py``).

:func:`realize_one` decides for one derivation in a given direct context:
reuse what the matcher accepts, or take the build lock, ask again, run the
realizer in a private temporary folder, check the outputs and insert them.
The scheduler, the REPL and failure capture are built from these pieces.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pylightnix.config import config_serialize, selfref
from pylightnix.errors import (
    BuildError,
    MatcherError,
    NotRealizedError,
    PromiseError,
    RealizeError,
    StoreError,
)
from pylightnix.gcpause import user_code
from pylightnix.hashing import context_hash
from pylightnix.progress import ProgressEvent, current_hook, report
from pylightnix.realize.build import build_tmpdir_set
from pylightnix.realize.buildlog import (
    TMP_LOG_NAME,
    add_log_note,
    capture_build_log,
    keep_proxies,
)
from pylightnix.realize.matchers import Match
from pylightnix.realize.registry import Derivation
from pylightnix.refs import dref_name, is_hashpart
from pylightnix.store.fsops import mkdtemp_in, remove_tree, this_pid
from pylightnix.store.insert import scan_output, store_derivation, store_realization
from pylightnix.store.locks import build_lock
from pylightnix.store.query import (
    drefrrefs_chash,
    in_place,
    indexed_candidates,
    remember_config,
)
from pylightnix.store.settings import StorageSettings
from pylightnix.store.temproots import add_temproots, confirm_temproots
from pylightnix.types import Context, DRef, Path, RRef

log = logging.getLogger("pylightnix.realize")

if TYPE_CHECKING:  # the remote layer loads only when a realize uses substituters or push_to
    from pylightnix.remote.backend import Remote
    from pylightnix.remote.substitute import Substituters


@dataclass(frozen=True)
class RealizeOptions:
    """Options of one realize call (see :func:`realize`)."""

    force_all: bool = False
    force: frozenset[DRef] = frozenset()
    assert_realized: frozenset[DRef] = frozenset()
    dry_run: bool = False
    realize_args: Mapping[DRef, Mapping[str, Any]] = field(default_factory=dict)
    keep_failed: bool = False
    show_log: bool = False
    # fd-level log capture (subprocesses too) is process-global: only when builds
    # run one at a time; concurrent builds capture Python-level writes per thread.
    log_fd: bool = True
    # Remote caches (docs/remote-format.md): asked before a build; pushed to after one.
    substituters: Substituters | None = None
    push_to: Remote | None = None

    def forced(self, dref: DRef) -> bool:
        return self.force_all or dref in self.force


@dataclass(frozen=True)
class StepResult:
    """What :func:`realize_one` did for one derivation."""

    dref: DRef
    rrefs: tuple[RRef, ...] | None  # None: would build (dry run)
    built: bool
    reason: str


def ask_matcher(drv: Derivation, S: StorageSettings, cands: list[RRef]) -> list[RRef] | None:
    try:
        m = drv.matcher(S, list(cands))
    except MatcherError as e:
        e.add_note(f"while matching {drv.dref}")
        if getattr(e, "dref", None) is None:
            e.dref = drv.dref  # type: ignore[attr-defined]
        raise
    if not m:
        return None
    if not isinstance(m, list):
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} returned {type(m).__name__}, "
            "expected a list of RRefs or None",
            dref=drv.dref,
        )
    cs = set(cands) if len(m) > 8 else cands  # a few choices: scanning beats building a set
    foreign = [r for r in m if r not in cs]
    if foreign:
        raise MatcherError(
            f"matcher {drv.matcher!r} of {drv.dref} returned {foreign[0]}, which is not "
            "among its candidates: a matcher may only choose from the list it is given",
            dref=drv.dref,
        )
    return sorted(set(m))


def check_promises(drv: Derivation, outs: Sequence[str]) -> None:
    failed = [
        (o, list(p)) for o in outs for p in drv.promises if not os.path.lexists(os.path.join(o, *p))
    ]
    missing = [os.path.join(o, *p) for o, p in failed]
    if missing:
        raise PromiseError(
            f"stage '{dref_name(drv.dref)}' ({drv.dref}) did not produce the files its "
            f"config promises: {', '.join(missing)} (write them in the realizer, or "
            "remove the [selfref, ...] entries from the config)",
            dref=drv.dref,
            missing=missing,
            # the original's PromiseException.failed: (output folder, [selfref, *path])
            failed=[(o, [selfref, *p]) for o, p in failed],
        )


def insert_outputs(
    drv: Derivation,
    S: StorageSettings,
    ctx: Context,
    outs: Sequence[str],
    build_start: float,
    log_path: str | None = None,
    *,
    derivation_stored: bool = False,
) -> list[RRef]:
    """Check the promises of finished output folders and insert them into the store.

    Every output is checked (promises, folder shape, file kinds) and hashed
    before any is inserted, so a build with one bad output stores none of its
    outputs. ``derivation_stored``: the caller stored the derivation and
    registered it as a temporary root (``build_in`` does).
    """
    if not isinstance(outs, list) or not outs or not all(isinstance(o, str) for o in outs):
        raise BuildError(
            f"realizer {drv.realizer!r} of {drv.dref} returned {outs!r}: it must return "
            "a non-empty list of output folder paths",
            dref=drv.dref,
            stage=str(dref_name(drv.dref)),
        )
    if len(outs) > 1 and len({os.path.realpath(o) for o in outs}) != len(outs):
        raise BuildError(
            f"realizer {drv.realizer!r} of {drv.dref} returned the same folder twice in "
            f"{outs!r}: each output must be its own folder",
            dref=drv.dref,
            stage=str(dref_name(drv.dref)),
        )
    check_promises(drv, outs)
    scans = [scan_output(drv.dref, o, S) for o in outs]
    t1 = time.time()
    rrefs = [
        store_realization(
            S,
            drv.dref,
            drv.config,
            ctx,
            sc.path,
            build_start=build_start,
            build_stop=t1,
            log_path=log_path,
            link_log=i == 0,
            scanned=sc,
            derivation_stored=derivation_stored,
        )
        for i, sc in enumerate(scans)
    ]
    # Registered, then put in place: the next match's check need not look again.
    confirm_temproots(S, rrefs)
    return rrefs


def run_realizer(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions, tmp: str
) -> list[Path]:
    """Run the derivation's realizer with ``tmp`` as its private temporary folder."""
    with build_tmpdir_set(tmp), user_code():
        try:
            return drv.realizer(S, drv.dref, ctx, opts.realize_args.get(drv.dref, {}))
        except Exception as e:
            raise BuildError(
                f"building stage '{dref_name(drv.dref)}' ({drv.dref}) failed: "
                f"{type(e).__name__}: {e}",
                dref=drv.dref,
                stage=str(dref_name(drv.dref)),
            ) from e


def build_in(
    drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions, tmp: str, t0: float
) -> list[RRef]:
    """Build in the private folder ``tmp`` and insert the outputs (the caller owns ``tmp``).

    Failure capture (``realize/failures.py``) reuses it to keep ``tmp`` on failure.
    """
    # A garbage collection between instantiate and realize may have removed the
    # (then unused) derivation; the realizer reads its config from the store.
    # Registered first (free if instantiate did): a derivation found stored stays
    # stored until the insertion, which then need not look again.
    add_temproots(S, [drv.dref])
    store_derivation(S, drv.dref, drv.config)
    remember_config(S, drv.dref, config_serialize(drv.config))
    log_path = f"{tmp}{os.sep}{TMP_LOG_NAME}"
    if current_hook() is not None:
        report(ProgressEvent("log", drv.dref, dref_name(drv.dref), extra={"path": log_path}))
    try:
        with capture_build_log(log_path, tee=opts.show_log, fd_level=opts.log_fd):
            outs = run_realizer(drv, S, ctx, opts, tmp)
        return insert_outputs(drv, S, ctx, outs, t0, log_path, derivation_stored=True)
    except RealizeError as e:
        add_log_note(e, log_path)
        raise


def _build(drv: Derivation, S: StorageSettings, ctx: Context, opts: RealizeOptions) -> list[RRef]:
    """Run the realizer and insert its outputs; the build lock is held by the caller."""
    tmp = take_build_folder(S, str(dref_name(drv.dref)))
    ok = False
    try:
        rrefs = build_in(drv, S, ctx, opts, tmp, time.time())
        ok = True
        return rrefs
    finally:
        if ok:
            give_back_build_folder(S, tmp)
        elif not opts.keep_failed:
            remove_tree(tmp)
        else:
            log.warning("kept the failed build folder of %s at %s", drv.dref, tmp)


# Private build folders are reused within one realize: making and removing an
# empty folder per build cost more than the rest of a trivial build on ext4
# (rmdir alone was ~50% of a cold realize in a profile, docs/store-format.md).
# The folders are named after their process (``build-<pid>-...``), so GC
# removes what a killed process left; each is used by one build at a time,
# and the realize that made them removes them when it ends.
_POOL: ContextVar[tuple[int, dict[str, list[str]]] | None] = ContextVar(
    "pylightnix_build_folders", default=None
)
_POOL_LOCK = threading.Lock()


@contextlib.contextmanager
def build_folders() -> Iterator[None]:
    """Within the block, builds reuse their emptied private folders; removed at the end."""
    cur = _POOL.get()
    if cur is not None and cur[0] == this_pid():
        yield  # a nested realize: the outer block owns the folders
        return
    pool: dict[str, list[str]] = {}
    tok = _POOL.set((this_pid(), pool))
    try:
        with keep_proxies():
            yield
    finally:
        _POOL.reset(tok)
        for folders in pool.values():
            for tmp in folders:
                remove_tree(tmp)


def take_build_folder(S: StorageSettings, name: str) -> str:
    """An empty private folder ``build-<name>-<pid>-<random>`` in ``S.tmpdir`` for one build
    of the stage ``name`` (a reused one, else a new one)."""
    cur = _POOL.get()
    tmp = None
    if cur is not None and cur[0] == this_pid():
        with _POOL_LOCK:
            free = cur[1].get(S.tmpdir)
            tmp = free.pop() if free else None
    if tmp is not None:
        # Renamed after the stage it builds now (one rename, no new inode), so that
        # people and the web view see which stage a running build folder belongs to.
        # The last part is the folder's own (unique among this process's folders), so
        # the name can only be a leftover of a killed process with the same pid: a
        # file or a folder with contents stays (the rename fails), an empty folder
        # is replaced.
        new = f"{S.tmpdir}{os.sep}build-{name}-{this_pid()}-{tmp.rsplit('-', 1)[1]}"
        if new == tmp:
            return tmp
        try:
            os.rename(tmp, new)
            return new
        except OSError:
            pass
        remove_tree(tmp)
    return mkdtemp_in(S.tmpdir, f"build-{name}")


def give_back_build_folder(S: StorageSettings, tmp: str) -> None:
    """Empty the folder of a successful build and keep it for the next one (else remove it)."""
    cur = _POOL.get()
    if cur is None or cur[0] != this_pid():
        remove_tree(tmp)
        return
    try:
        with os.scandir(tmp) as it:
            entries = [(e.path, e.name == TMP_LOG_NAME and e.is_file()) for e in it]
        for p, is_log in entries:
            if not is_log:
                remove_tree(p)  # what the realizer left besides its outputs
            elif os.lstat(p).st_size:
                # It may be the first output's build.log now (a hard link): never
                # truncated, the next build gets a new file. An empty one is kept
                # for the next build (one inode less per silent build).
                os.unlink(p)
    except OSError:
        remove_tree(tmp)
        return
    with _POOL_LOCK:
        cur[1].setdefault(S.tmpdir, []).append(tmp)


def decide(
    drv: Derivation,
    S: StorageSettings,
    ctx: Context,
    opts: RealizeOptions,
    *,
    chash: str | None = None,
) -> StepResult | None:
    """Steps 2-3: reuse what the matcher accepts (or a dry run's answer); ``None``: build.

    ``chash`` is ``context_hash(ctx)`` when the caller has it already.
    """
    forced = opts.forced(drv.dref)
    if not forced:
        chash = context_hash(ctx) if chash is None else chash
        m = match_in(drv, S, chash)
        if m is not None:
            return StepResult(drv.dref, tuple(m), False, "matched")
        # What follows (a substitution, an error, a dry run's answer, a build) must
        # rest on a context of checked picks: an unchecked one may be a line in flight.
        flush_deferred(S)
        if opts.substituters and not opts.dry_run:
            m = substitute_in(drv, S, chash, opts.substituters)
            if m is not None:
                return StepResult(drv.dref, tuple(m), False, "substituted")
    if drv.dref in opts.assert_realized:
        # Checked before the dry-run exit: a dry run answers "would this fail?" too.
        raise NotRealizedError(
            f"{drv.dref} ('{dref_name(drv.dref)}') is not realized in this context but "
            "was listed in assert_realized: realize it first, or drop it from the list",
            dref=drv.dref,
        )
    if opts.dry_run:
        return StepResult(drv.dref, None, False, "forced" if forced else "unmatched")
    return None


def realize_one(
    drv: Derivation,
    S: StorageSettings,
    ctx: Context,
    opts: RealizeOptions,
    *,
    chash: str | None = None,
) -> StepResult:
    """Steps 2-4 of the algorithm for one derivation in the given direct context
    (``chash``: its hash, when the caller has it already)."""
    chash = context_hash(ctx) if chash is None else chash
    decided = decide(drv, S, ctx, opts, chash=chash)
    if decided is not None:
        return decided
    # The build reads its context: what was chosen so far must be registered.
    flush_deferred(S)
    forced = opts.forced(drv.dref)
    with build_lock(S, drv.dref):
        if not forced:
            # Another process may have built it while we waited for the lock.
            m = match_in(drv, S, chash)
            if m is not None:
                return StepResult(drv.dref, tuple(m), False, "built by another process")
        report(ProgressEvent("build", drv.dref, dref_name(drv.dref)))
        _build(drv, S, ctx, opts)
        m = match_in(drv, S, chash)
    if m is None:
        raise unsatisfied_after_build(drv)
    if opts.push_to is not None:
        push_built(drv, S, m, opts.push_to)
    return StepResult(drv.dref, tuple(m), True, "forced" if forced else "built")


MATCH_RETRIES = 20
"""How often a match is asked again when collections keep deleting what it chose."""


@dataclass
class _Pending:
    """Matches waiting for their registration (see :func:`deferred_registration`)."""

    refs: list[RRef] = field(default_factory=list)
    unchecked: set[RRef] = field(default_factory=set)
    """Picks answered from an index and not yet seen in place: the registration checks them."""
    trust_index: bool = True


_DEFERRED: ContextVar[_Pending | None] = ContextVar("pylightnix_deferred_roots", default=None)


class VanishedError(Exception):
    """(internal) A deferred registration found chosen realizations deleted: realize again."""


def vanished_error(where: str, S: StorageSettings) -> StoreError:
    """The error once collections deleted chosen realizations :data:`MATCH_RETRIES` times."""
    return StoreError(
        f"the realizations matched for {where} were deleted by garbage collections "
        f"{MATCH_RETRIES} times in a row before they could be registered: stop the "
        "collections running in a loop on this store, then realize again",
        path=S.storage,
    )


@contextlib.contextmanager
def deferred_registration(S: StorageSettings, *, trust_index: bool = True) -> Iterator[None]:
    """Within the block, what matchers choose becomes a temporary root in one batch
    (one write): before the next build (which reads it) and at the end of the block.

    With ``trust_index``, a pick a matcher makes from its derivation's index
    (:func:`_match`) is checked to be in place by that registration, not
    before: the check it needs after its registration anyway (race window 2
    of ``docs/gc.md``) then serves both, one ``stat`` instead of two.

    Raises:
        VanishedError: at a flush, a chosen realization was deleted in between,
            or a pick from an index was not in place (the caller realizes
            again, without ``trust_index``).
    """
    tok = _DEFERRED.set(_Pending(trust_index=trust_index))
    try:
        yield
        flush_deferred(S)
    finally:
        _DEFERRED.reset(tok)


@contextlib.contextmanager
def immediate_registration() -> Iterator[None]:
    """Within the block (parallel steps), each match is registered at once."""
    tok = _DEFERRED.set(None)
    try:
        yield
    finally:
        _DEFERRED.reset(tok)


def flush_deferred(S: StorageSettings) -> None:
    """Register the deferred choices; raise :class:`VanishedError` if some are gone."""
    pend = _DEFERRED.get()
    if pend is not None and pend.refs:
        batch, whole = pend.refs, pend.unchecked
        pend.refs, pend.unchecked = [], set()
        if add_temproots(S, batch, check=True, whole=whole):
            raise VanishedError(batch)


def substitute_in(
    drv: Derivation, S: StorageSettings, chash: str, subs: Substituters
) -> list[RRef] | None:
    """Pull what the substituters hold of ``drv`` in context ``chash``; ask the matcher again."""
    if not subs.substitute(drv.dref, chash, S):
        return None
    return match_in(drv, S, chash)


def push_built(drv: Derivation, S: StorageSettings, rrefs: list[RRef], remote: Remote) -> None:
    """Push what a build just produced (``realize(push_to=...)``)."""
    from pylightnix.remote.transfer import push

    try:
        push(rrefs, remote, S=S)
    except Exception as e:
        e.add_note(
            f"{drv.dref} was built and stored locally, but pushing it to {remote.url} failed: "
            f"run `pylightnix push {remote.url} REF` once the remote is back"
        )
        raise


def match_in(drv: Derivation, S: StorageSettings, chash: str) -> list[RRef] | None:
    """Ask the matcher of ``drv`` about its realizations in the context ``chash``.

    What it chooses becomes a temporary root of this process (alive until
    the process ends or releases it, ``docs/gc.md``): at once, or in one
    batch inside :func:`deferred_registration`. A concurrent collection may
    delete a candidate between the listing and that registration; the
    registration sees it (under the GC lock) and the matcher is asked again
    (or, deferred, the whole closure is realized again).
    """
    pend = _DEFERRED.get()
    if pend is not None:
        m = _match(drv, S, chash, pend.unchecked if pend.trust_index else None)
        if m:
            pend.refs.extend(m)
        return m
    for _ in range(MATCH_RETRIES):
        m = _match(drv, S, chash)
        if m is None or not add_temproots(S, m, check=True):
            return m
    raise vanished_error(str(drv.dref), S)


def _match(
    drv: Derivation, S: StorageSettings, chash: str, unchecked: set[RRef] | None = None
) -> list[RRef] | None:
    """The matcher's answer among the realizations of ``drv`` in context ``chash``.

    A matcher of ``matchers.py`` answers from the derivation's index first
    (``Match.index_pick``): then only its few picks are checked to be in place,
    not every candidate, so a derivation with thousands of realizations costs
    one pass over its index and a ``stat`` per pick. Else, or when a pick is
    not in place, the matcher is asked with the candidates in place. Given
    ``unchecked``, picks are added to it instead of being checked here: the
    caller checks them later (:func:`flush_deferred`).
    """
    m = drv.matcher
    if type(m) is Match:  # a subclass may answer otherwise than its key and trim
        ix, hashes = indexed_candidates(drv.dref, chash, S)
        if not hashes:
            return ask_matcher(drv, S, [])  # none indexed: none in place either
        picked = m.index_pick(ix, hashes)
        if picked and len(picked) <= PICKS_CHECKED_MAX and all(map(is_hashpart, picked)):
            # The DRef of a derivation is well-formed: its RRefs are "rref:<hash>-" + its tail.
            out = [RRef(f"rref:{h}-{drv.dref[5:]}") for h in sorted(set(picked))]
            if unchecked is not None:
                unchecked.update(out)
                return out
            if in_place(drv.dref, picked, S):
                return out
    return ask_matcher(drv, S, drefrrefs_chash(drv.dref, chash, S))


PICKS_CHECKED_MAX = 8
"""More picks than this are checked by listing the derivation folder (:func:`drefrrefs_chash`)."""


def unsatisfied_after_build(drv: Derivation) -> MatcherError:
    """The error for a matcher that still rejects what a build just produced."""
    return MatcherError(
        f"matcher {drv.matcher!r} of {drv.dref} is still unsatisfied after a build: "
        "it rejects what the realizer produced (check that it can accept a fresh "
        "realization, e.g. match_latest(n) needs n outputs: build_wrapper(f, nouts=n))",
        dref=drv.dref,
    )


def context_of(drv: Derivation, chosen: Context) -> Context | None:
    """The direct context of ``drv`` from the chosen realizations, or ``None`` if a dep has none."""
    ctx: Context = {}
    for d in drv.deps:
        r = chosen.get(d)
        if r is None:
            return None  # a dependency is not realized (dry run)
        ctx[d] = r
    return ctx
