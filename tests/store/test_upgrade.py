"""Tests of store/upgrade.py: a store written by the store-v1 release becomes store-v2 in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pylightnix import (
    StorageSettings,
    StoreVersionError,
    UpgradeError,
    fsinit,
    instantiate,
    mkSS,
    realize,
    realizeMany,
    upgrade_store,
    verify,
)
from pylightnix.realize.failures import drefrrefs_failed
from pylightnix.store.chosen import chosen_records
from pylightnix.store.query import alldrefs, allrrefs, drefrrefs
from tests.helpers import index_lines, unpack_store_v1
from tests.store import v1_stages

SOURCE, TRAIN, BROKEN = "source", "train", "broken"


def _unpack(tmp_path: Path) -> StorageSettings:
    unpack_store_v1(str(tmp_path / "root"))
    return mkSS(str(tmp_path / "root"))


def _old_listing(storage: str) -> dict[str, list[str]]:
    """Every derivation folder's entries, by name."""
    return {
        n: sorted(os.listdir(os.path.join(storage, n)))
        for n in sorted(os.listdir(storage))
        if not n.startswith(".") and n != "FORMAT"
    }


def test_a_store_v1_root_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    """Opening or initializing a root that holds a store-v1 store names `pylightnix upgrade`,
    and makes no new store beside it."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    msg = (
        f"the store at {old!r} has the older format 'store-v1'; this pylightnix reads "
        "'store-v2': upgrade it in place with `pylightnix upgrade` (or upgrade_store(S)), "
        "after stopping the processes that use it"
    )
    with pytest.raises(StoreVersionError) as ei:
        list(alldrefs(S))
    assert str(ei.value) == msg
    with pytest.raises(StoreVersionError) as ei:
        fsinit(S)
    assert str(ei.value) == msg
    assert sorted(os.listdir(S.root)) == ["store-v1", "tmp"]


def test_upgrade_keeps_every_object_and_what_the_index_knew(tmp_path: Path) -> None:
    """After the upgrade the same stages realize with no build, the matcher keeps its pick,
    scores are not read again, the failed realization stays failed, and verify is clean."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    with open(os.path.join(old, "FORMAT")) as f:
        assert f.read() == "pylightnix store-v1\n"
    before = _old_listing(old)
    res = upgrade_store(S)
    assert (res.storage, res.derivations, res.realizations, res.renamed_from) == (
        S.storage,
        3,
        5,
        old,
    )
    assert os.readlink(old) == "store-v2"
    with open(os.path.join(S.storage, "FORMAT")) as f:
        assert f.read() == "pylightnix store-v2\n"
    after = _old_listing(S.storage)
    for n, names in before.items():
        kept = [x for x in names if x not in ("by-context", "by-context-failed", "facts.tsv")]
        kept = [x for x in kept if not x.startswith("chosen-")]
        assert after[n] == sorted([*kept, "index.tsv"])
    train = next(d for d in alldrefs(S) if d.endswith("-train"))
    (rec,) = chosen_records(S, train).values()
    # The scores came over: the best by acc.txt (0.7) without reading the files again.
    assert sorted(x[2:] for x in index_lines(S.storage, train, "S")) == [
        ["acc.txt", "0.5"],
        ["acc.txt", "0.6"],
        ["acc.txt", "0.7"],
    ]
    for r in drefrrefs(train, S):
        os.chmod(os.path.join(S.storage, train[5:], r[5:37], "acc.txt"), 0o000)
    picked = realizeMany(instantiate(v1_stages.train, S=S))
    assert tuple(picked) == rec.rrefs
    broken = next(d for d in alldrefs(S) if d.endswith("-broken"))
    assert len(drefrrefs_failed(broken, {}, S)) == 1
    assert drefrrefs(broken, S) != []  # a failed realization is stored, never a candidate
    for r in drefrrefs(train, S):
        os.chmod(os.path.join(S.storage, train[5:], r[5:37], "acc.txt"), 0o444)
    assert verify(S=S).ok
    assert len(list(allrrefs(S))) == 5
    # Nothing was built: the closure's no-op pass made no new realization.
    realize(instantiate(v1_stages.train, S=S))
    assert len(list(allrrefs(S))) == 5


def test_result_links_into_the_old_folder_keep_resolving(tmp_path: Path) -> None:
    """A link made to a realization under store-v1 still reaches it through the symlink."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    d = next(n for n in os.listdir(old) if n.endswith("-source"))
    (rhash,) = [n for n in os.listdir(os.path.join(old, d)) if len(n) == 32]
    link = tmp_path / "result-source"
    os.symlink(os.path.join(old, d, rhash), link)
    upgrade_store(S)
    with open(link / "data.txt") as f:
        assert f.read() == "source data\n"


def test_upgrade_is_idempotent_and_resumes_after_a_crash(tmp_path: Path) -> None:
    """Run again, the upgrade changes nothing; interrupted after the new FORMAT was written
    (before the rename), it finishes the job."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    # The crash: indexes and FORMAT written, folder not renamed yet, old files still there.
    fmt = os.path.join(old, "FORMAT")
    os.chmod(fmt, 0o644)
    with open(fmt, "w") as f:
        f.write("pylightnix store-v2\n")
    res = upgrade_store(S)
    assert res.renamed_from == old
    assert os.path.islink(old)
    train = next(d for d in alldrefs(S) if d.endswith("-train"))
    assert not os.path.exists(os.path.join(S.storage, train[5:], "by-context"))
    listing = _old_listing(S.storage)
    again = upgrade_store(S)
    assert (again.derivations, again.realizations, again.renamed_from) == (0, 0, None)
    assert _old_listing(S.storage) == listing


def test_upgrade_refuses_while_a_process_uses_the_store(tmp_path: Path) -> None:
    """A live process's temporary-roots record makes the upgrade refuse, naming what to do;
    nothing changes."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    rec = os.path.join(old, ".temproots", "4242-abc")
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "open(sys.argv[2]).read()\n",
            rec,
            str(fifo),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        before = _old_listing(old)
        with pytest.raises(UpgradeError) as ei:
            upgrade_store(S)
        assert str(ei.value) == (
            f"cannot upgrade the store at {old!r}: 1 running process(es) use it (temporary "
            "roots 4242-abc); stop them, then run `pylightnix upgrade` again"
        )
        assert _old_listing(old) == before
        assert not os.path.islink(old)
    finally:
        with open(fifo, "w") as f:
            f.write("x")
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    assert upgrade_store(S).derivations == 3


def test_nothing_to_upgrade_is_an_error(tmp_path: Path) -> None:
    """A root without a store-v1 store: UpgradeError naming both places looked at."""
    S = mkSS(str(tmp_path / "empty"))
    with pytest.raises(UpgradeError) as ei:
        upgrade_store(S)
    assert str(ei.value) == (
        f"no store-v1 store to upgrade at {S.storage!r} or {os.path.join(S.root, 'store-v1')!r}"
    )


def test_an_empty_new_store_in_the_way_is_replaced_but_a_used_one_is_not(
    tmp_path: Path,
) -> None:
    """An empty store-v2 made beside the old one gives way; one holding objects stops the
    upgrade before anything changes."""
    S = _unpack(tmp_path)
    old = os.path.join(S.root, "store-v1")
    os.rename(old, old + ".away")
    fsinit(S)  # an empty store-v2, made while the old store was elsewhere
    os.rename(old + ".away", old)
    assert upgrade_store(S).derivations == 3
    S2 = _unpack(tmp_path / "second")
    os.rename(os.path.join(S2.root, "store-v1"), os.path.join(S2.root, "away"))
    fsinit(S2)
    realize(instantiate(v1_stages.source, S=S2))
    os.rename(os.path.join(S2.root, "away"), os.path.join(S2.root, "store-v1"))
    with pytest.raises(UpgradeError) as ei:
        upgrade_store(S2)
    assert str(ei.value) == (
        f"cannot upgrade into {S2.storage!r}: a store-v2 store holding objects is already "
        "there; move it away (or export what it holds and import it after)"
    )
    with open(os.path.join(S2.root, "store-v1", "FORMAT")) as f:
        assert f.read() == "pylightnix store-v1\n"
    assert not any(
        "index.tsv" in names for names in _old_listing(os.path.join(S2.root, "store-v1")).values()
    )


def test_a_store_in_its_own_folder_is_upgraded_where_it_is(tmp_path: Path) -> None:
    """With a storage folder of its own (PYLIGHTNIX_STORE), the store is upgraded in place:
    nothing is renamed, and its objects realize again without a build."""
    base = _unpack(tmp_path)
    S = mkSS(base.root, stordir=os.path.join(base.root, "store-v1"))
    with pytest.raises(StoreVersionError):
        list(alldrefs(S))
    res = upgrade_store(S)
    assert (res.storage, res.derivations, res.renamed_from) == (S.storage, 3, None)
    assert not os.path.islink(S.storage)
    assert sorted(os.listdir(S.root)) == ["store-v1", "tmp"]
    before = sorted(allrrefs(S))
    realize(instantiate(v1_stages.train, S=S))
    assert sorted(allrrefs(S)) == before
