"""SIGKILL at random points of instantiate, realize and GC never leaves an invalid visible object.

A child process instantiates and realizes a 20-stage chain (and, in some
trials, collects garbage), writing one line per event (a derivation
registered, a build started, a build finished, a collection started) to a
pipe. The parent reads a seeded random number of lines, waits a random
fraction of a millisecond more, and kills the child with SIGKILL. Then every
object visible in the store must be complete and match its hash, the same
closure must realize, and a GC must sweep every leftover.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

from pylightnix import (
    Build,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    export_closure,
    fsinit,
    gc,
    import_closure,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize,
    realize1,
    verify,
)
from pylightnix.refs import is_hashpart, maybe_parse_dref_dirname, mkrref, parse_dref
from pylightnix.store.layout import TEMPROOTS_DIR
from pylightnix.store.temproots import release_temproots
from pylightnix.store.verify import config_problem, realization_problem
from pylightnix.types import DRef

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 20
TRIALS = 40
_EVENTS: list[int] = []  # the child's event pipe (empty in the parent)


def _event(text: str) -> None:
    if _EVENTS:
        os.write(_EVENTS[0], f"{text}\n".encode())


def _write_files(b: Build) -> None:
    """Realizer: several files, one of them large enough to take a while to write and hash."""
    c = build_cattrs(b)
    _event(f"build {c.i}")
    out = build_outpath(b)
    with open(os.path.join(out, "a.txt"), "w") as f:
        f.write(f"{c.name} {c.salt}\n")
    os.mkdir(os.path.join(out, "sub"))
    with open(os.path.join(out, "sub", "big.bin"), "wb") as f:
        for j in range(32):
            f.write(bytes([(c.i + j) % 256]) * 8192)
    _event(f"built {c.i}")


def _chain(salt: str, r: Any = None) -> DRef:
    d: DRef | None = None
    for i in range(N):
        cfg: dict[str, Any] = {"name": f"c{i}", "i": i, "salt": salt}
        if d is not None:
            cfg["dep"] = d
        d = mkdrv(cfg, match_only(), build_wrapper(_write_files), r)
        _event(f"drv {i}")
    assert d is not None
    return d


def child_main(argv: list[str]) -> None:
    """(child) Instantiate and realize the chain; optionally collect garbage afterwards."""
    root, salt, fd, with_gc = argv[0], argv[1], int(argv[2]), argv[3] == "1"
    _EVENTS.append(fd)
    S = mkSS(root)
    realize(instantiate(_chain, salt, S=S))
    if with_gc:
        # Let go of what this process realized, so that the collection deletes
        # (and a kill can land in the middle of a deletion).
        release_temproots(S)
        _event("gc")
        gc(S)
    _event("done")


def _spawn(S: StorageSettings, salt: str, with_gc: bool) -> tuple[subprocess.Popen[bytes], Any]:
    r, w = os.pipe()
    code = "import sys; from tests.test_crash import child_main; child_main(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": REPO}
    p = subprocess.Popen(
        [sys.executable, "-c", code, S.root, salt, str(w), "1" if with_gc else "0"],
        pass_fds=(w,),
        env=env,
        cwd=REPO,
    )
    os.close(w)
    return p, os.fdopen(r, "rb")


def _assert_store_valid(S: StorageSettings) -> None:
    """Every visible derivation and realization folder is complete and matches its hash."""
    for n in os.listdir(S.storage):
        dref = maybe_parse_dref_dirname(n)
        if dref is None:
            continue
        ddir = os.path.join(S.storage, n)
        assert config_problem(ddir, dref) is None
        dhash, name = parse_dref(dref)
        for h in os.listdir(ddir):
            if is_hashpart(h):
                r = mkrref(h, dhash, name)  # type: ignore[arg-type]
                assert realization_problem(os.path.join(ddir, h), r) is None, r


def _assert_no_leftovers(S: StorageSettings) -> None:
    """No temporary files, no index line without its realization, no dead process's record."""
    assert os.listdir(S.tmpdir) == []
    records = os.listdir(os.path.join(S.storage, TEMPROOTS_DIR))
    assert all(n.startswith(f"{os.getpid()}-") for n in records), records
    for dirpath, dirnames, filenames in os.walk(S.storage):
        assert not [x for x in dirnames + filenames if ".tmp-" in x or x.startswith("trash-")]
        if "index.tsv" in filenames:
            with open(os.path.join(dirpath, "index.tsv")) as f:
                lines = [x.split("\t") for x in f.read().splitlines()]
            named = [x[1] for x in lines if x[0] in ("R", "F")]
            assert all(os.path.isdir(os.path.join(dirpath, h)) for h in named), dirpath


def test_sigkill_at_random_points_leaves_a_valid_store(S: StorageSettings) -> None:
    """Seeded kills during instantiate/realize/GC: valid store, realize and GC succeed after."""
    rng = random.Random(20261124)
    events_per_run = 3 * N + 2
    killed = 0
    for trial in range(TRIALS):
        salt = f"t{trial % 8}"  # trials share closures: a kill can land on a half-built one
        with_gc = trial % 3 == 2
        p, events = _spawn(S, salt, with_gc)
        k = rng.randrange(events_per_run)
        done = False
        for _ in range(k):
            line = events.readline()
            if line in (b"", b"done\n"):
                done = True
                break
        if not done:
            # The kill point within the step: a random fraction of a millisecond later.
            time.sleep(rng.random() / 1000)
            p.send_signal(signal.SIGKILL)
        p.wait(60)
        events.close()
        killed += p.returncode == -signal.SIGKILL
        _assert_store_valid(S)
        assert verify(S=S).ok
        top = realize1(instantiate(_chain, salt, S=S))
        release_temproots(S)  # only `top` stays: the next trials find garbage
        gc(S, keep_rrefs=[top])
        _assert_no_leftovers(S)
        _assert_store_valid(S)
        clo = instantiate(_chain, salt, S=S)
        assert realize1(clo, assert_realized=[d.dref for d in clo[1].derivations]) == top
    assert killed >= TRIALS // 2


def test_a_durable_store_flushes_before_objects_become_visible(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """durable=True fsyncs every file of a realization before its rename, same RRefs as plain."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    plain = fsinit(mkSS(str(tmp_path / "plain")))
    durable = fsinit(mkSS(str(tmp_path / "durable"), durable=True))
    expected = realize1(instantiate(_chain, "d", S=plain))
    monkeypatch.setattr(os, "fsync", fsync)
    assert realize1(instantiate(_chain, "d", S=durable)) == expected
    monkeypatch.undo()
    built = [p for p in synced if p.endswith(os.path.join("sub", "big.bin"))]
    assert len(built) == N
    assert all(p.startswith(durable.tmpdir) for p in built)
    assert verify(S=durable).ok


def import_main(argv: list[str]) -> None:
    """(child) Import an archive, announcing the start on the event pipe."""
    root, archive, fd = argv[0], argv[1], int(argv[2])
    _EVENTS.append(fd)
    _event("start")
    import_closure(archive, mkSS(root))
    _event("done")


def test_sigkill_during_import_leaves_a_valid_store(S: StorageSettings, tmp_path: Any) -> None:
    """Killing an import at random moments never shows a partial object; import then works."""
    src = fsinit(mkSS(str(tmp_path / "src")))
    top = realize1(instantiate(_chain, "imp", S=src))
    archive = export_closure([top], str(tmp_path / "c.tar.gz"), src, compression="gz")
    rng = random.Random(4)
    code = "import sys; from tests.test_crash import import_main; import_main(sys.argv[1:])"
    for _ in range(8):
        gc(S)
        r, w = os.pipe()
        p = subprocess.Popen(
            [sys.executable, "-c", code, S.root, archive, str(w)],
            pass_fds=(w,),
            env={**os.environ, "PYTHONPATH": REPO},
            cwd=REPO,
        )
        os.close(w)
        with os.fdopen(r, "rb") as events:
            events.readline()
            # Here the kill point itself is what is random: anywhere in the import.
            time.sleep(rng.random() * 0.15)
            p.send_signal(signal.SIGKILL)
            p.wait(60)
        _assert_store_valid(S)
        assert import_closure(archive, S) == [top]
        release_temproots(S)  # the next round's gc(S) empties the store again
        gc(S, keep_rrefs=[top])
        _assert_no_leftovers(S)
        assert verify(S=S).ok
