"""Temporary roots (store/temproots.py): per-process records that die with their process."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from typing import Any

from pylightnix import (
    Build,
    StorageSettings,
    allrrefs,
    build_outpath,
    build_wrapper,
    fsinit,
    gc,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    rref2dref,
)
from pylightnix.store.fsops import remove_tree
from pylightnix.store.layout import TEMPROOTS_DIR
from pylightnix.store.temproots import (
    TempRootsReader,
    add_temproots,
    confirm_temproots,
    my_temproots,
    release_temproots,
)
from pylightnix.types import DRef

CTX = multiprocessing.get_context("spawn")
TIMEOUT = 120


def _write(b: Build) -> None:
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write("x")


def _one(r: Any = None) -> DRef:
    return mkdrv({"name": "one"}, match_only(), build_wrapper(_write), r)


def _records(S: StorageSettings) -> list[str]:
    return sorted(os.listdir(os.path.join(S.storage, TEMPROOTS_DIR)))


def _lines(S: StorageSettings) -> list[str]:
    out: list[str] = []
    for n in _records(S):
        with open(os.path.join(S.storage, TEMPROOTS_DIR, n)) as f:
            out.extend(f.read().splitlines())
    return out


def test_realize_registers_its_derivation_and_result_in_one_record(S: StorageSettings) -> None:
    """One record per process, named by its pid, listing the DRef and the RRef once each."""
    rref = realize1(instantiate(_one, S=S))
    (name,) = _records(S)
    assert name.startswith(f"{os.getpid()}-")
    assert sorted(_lines(S)) == sorted([rref, rref2dref(rref)])
    assert my_temproots(S) == {rref, rref2dref(rref)}
    realize1(instantiate(_one, S=S))
    assert sorted(_lines(S)) == sorted([rref, rref2dref(rref)])  # registered once


def test_release_removes_the_record_and_lets_gc_take_the_results(S: StorageSettings) -> None:
    """release_temproots drops this process's record; the next gc deletes the result."""
    rref = realize1(instantiate(_one, S=S))
    assert gc(S).deleted_rrefs == ()
    release_temproots(S)
    assert _records(S) == []
    assert my_temproots(S) == set()
    assert gc(S).deleted_rrefs == (rref,)


def test_check_reports_refs_that_are_not_stored(S: StorageSettings) -> None:
    """add_temproots(check=True) names the refs missing from the store, registered or not."""
    rref = realize1(instantiate(_one, S=S))
    ghost = rref.replace(rref[5:37], "0" * 32)
    assert add_temproots(S, [rref, ghost], check=True) == [ghost]
    assert add_temproots(S, [ghost], check=True) == [ghost]  # already registered: still checked
    assert add_temproots(S, [rref]) == []


def _register_and_die(root: str, refs: list[str]) -> None:
    """(child) Register, then die without cleaning up (as a killed process would)."""
    add_temproots(mkSS(root), refs)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_dead_process_record_is_ignored_and_removed_by_gc(S: StorageSettings) -> None:
    """A process that registered and was killed keeps nothing alive; gc removes its record."""
    rref = realize1(instantiate(_one, S=S))
    release_temproots(S)
    p = CTX.Process(target=_register_and_die, args=(S.root, [rref]))
    p.start()
    p.join(TIMEOUT)
    assert p.exitcode == -signal.SIGKILL
    (dead,) = _records(S)
    res = gc(S)
    assert res.deleted_rrefs == (rref,)
    assert os.path.join(S.storage, TEMPROOTS_DIR, dead) in res.tmp_removed
    assert _records(S) == []


def test_a_dry_run_reports_a_dead_record_and_keeps_it(S: StorageSettings) -> None:
    """gc(dry_run=True) lists the record of a dead process among leftovers, deleting nothing."""
    p = CTX.Process(target=_register_and_die, args=(S.root, ["dref:" + "1" * 32 + "-x"]))
    p.start()
    p.join(TIMEOUT)
    (dead,) = _records(S)
    assert gc(S, dry_run=True).tmp_removed == (os.path.join(S.storage, TEMPROOTS_DIR, dead),)
    assert _records(S) == [dead]


def test_the_reader_returns_only_lines_added_since_its_last_read(S: StorageSettings) -> None:
    """The collector reads each live record incrementally (what was appended since)."""
    a, b = "dref:" + "a" * 32 + "-a", "dref:" + "b" * 32 + "-b"
    reader = TempRootsReader(S)
    add_temproots(S, [a])
    assert reader.read() == {a}
    assert reader.read() == set()
    add_temproots(S, [a, b])
    assert reader.read() == {b}
    assert reader.dead_paths() == []


def test_a_forked_child_makes_its_own_record(S: StorageSettings) -> None:
    """After fork the child neither writes to nor releases the parent's record."""
    a, b = "dref:" + "a" * 32 + "-a", "dref:" + "b" * 32 + "-b"
    add_temproots(S, [a])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            add_temproots(S, [b])
            code = 0 if my_temproots(S) == {b} else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert my_temproots(S) == {a}
    mine, child = sorted(_records(S), key=lambda n: not n.startswith(f"{os.getpid()}-"))
    assert mine.startswith(f"{os.getpid()}-")
    with open(os.path.join(S.storage, TEMPROOTS_DIR, mine)) as f:
        assert f.read() == f"{a}\n"
    reader = TempRootsReader(S, remove_dead=False)
    assert reader.read() == {a}  # the child's record died with the child
    assert reader.dead_paths() == [os.path.join(S.storage, TEMPROOTS_DIR, child)]


_AS_NOBODY = """
import os, sys
sys.path.insert(0, sys.argv[2])
# Import everything first: the interpreter's own files are not readable by nobody.
import pylightnix.cli.app, pylightnix.store.gc, pylightnix.store.verify, tests.store.test_temproots
from pylightnix import instantiate, realize1, mkSS, verify, gc, StoreError
from tests.store.test_temproots import _one
os.setgid(65534)
os.setuid(65534)
S = mkSS(sys.argv[1])
print(realize1(instantiate(_one, S=S)))
print(verify(S=S).ok)
print(gc(S, dry_run=True).deleted_rrefs)
try:
    gc(S)
except StoreError as e:
    print(e)
"""


def test_a_store_the_process_cannot_write_serves_cached_realizes_without_a_record() -> None:
    """As an unprivileged user on a root-owned store: a cached realize, verify and a dry run
    work and make no record; a real gc is a StoreError saying why."""
    base = tempfile.mkdtemp(prefix="plx-ro-")
    try:
        os.chmod(base, 0o755)
        S = fsinit(mkSS(os.path.join(base, "plx")))
        rref = realize1(instantiate(_one, S=S))
        release_temproots(S)
        top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        p = subprocess.run(
            [sys.executable, "-c", _AS_NOBODY, S.root, top],
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == [
            rref,
            "True",
            f"({rref!r},)",
            f"cannot collect garbage in {S.storage!r}: this process cannot write to the store "
            "(read-only mount or another user's store); run gc as its owner, or use "
            "dry_run=True to see what would be deleted",
        ]
        assert _records(S) == []
        assert list(allrrefs(S)) == [rref]
    finally:
        remove_tree(base)


def test_a_process_that_exits_normally_removes_its_record(S: StorageSettings) -> None:
    """A realize in a process that then exits leaves no record behind (atexit)."""
    code = (
        "import sys; from pylightnix import add_temproots, mkSS; "
        "add_temproots(mkSS(sys.argv[1]), ['dref:' + '1' * 32 + '-x'])"
    )
    subprocess.run([sys.executable, "-c", code, S.root], check=True, timeout=TIMEOUT)
    assert _records(S) == []


def test_confirmed_refs_are_not_looked_for_again_and_only_registered_ones_count(
    S: StorageSettings,
) -> None:
    """confirm_temproots (an insertion put the refs in place after registering them) spares
    later checks the lookup; a ref this process never registered is still checked."""
    rref = realize1(instantiate(_one, S=S))
    inserted = rref.replace(rref[5:37], "1" * 32)
    ghost = rref.replace(rref[5:37], "0" * 32)
    add_temproots(S, [inserted])
    confirm_temproots(S, [inserted, ghost])
    assert add_temproots(S, [inserted, ghost], check=True) == [ghost]


def test_refs_checked_whole_need_their_reserved_folder_even_when_found_before(
    S: StorageSettings,
) -> None:
    """A ref passed as ``whole`` is looked for with its reserved folder at every check,
    found before or not: a folder without it (an insertion not complete, or damaged by
    hand) counts as missing; the others are checked as before."""
    from pylightnix.store.layout import RESERVED, rref_folder

    rref = realize1(instantiate(_one, S=S))
    assert add_temproots(S, [rref], check=True) == []  # found: not looked for again
    reserved = os.path.join(rref_folder(S.storage, rref), RESERVED)
    os.chmod(os.path.dirname(reserved), 0o755)
    os.chmod(reserved, 0o755)
    for n in os.listdir(reserved):
        os.remove(os.path.join(reserved, n))
    os.rmdir(reserved)
    assert add_temproots(S, [rref], check=True) == []
    assert add_temproots(S, [rref], check=True, whole={rref}) == [rref]
