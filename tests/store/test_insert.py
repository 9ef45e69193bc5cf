"""Tests of store/insert.py: atomic, read-only, race-safe insertion of objects."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pylightnix import (
    Build,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_wrapper,
    fsinit,
    instantiate,
    match_only,
    mkdrv,
    mkSS,
    realize1,
    rref2path,
)
from pylightnix.config import config_hash, config_name, mkconfig
from pylightnix.errors import StoreError
from pylightnix.hashing import hash_tree
from pylightnix.refs import mkdref, parse_rref
from pylightnix.store.fsops import unshare_hardlinks
from pylightnix.store.insert import (
    check_output,
    meta_json,
    scan_output,
    store_derivation,
    store_realization,
)
from pylightnix.store.query import drefrrefs, drefrrefsC, rrefctx, rrefmeta
from pylightnix.store.verify import verify
from pylightnix.types import Context, DRef, RRef
from tests.helpers import listing

CFG = mkconfig({"name": "thing", "v": 1})
DREF = mkdref(config_hash(CFG), config_name(CFG))
DEP = DRef("dref:" + "d" * 32 + "-dep")
DEP_R = RRef("rref:" + "e" * 32 + "-" + "d" * 32 + "-dep")


def make_output(parent: str, name: str = "out") -> str:
    """A small output folder: a file, an executable, a subfolder and a symlink."""
    o = os.path.join(parent, name)
    os.makedirs(os.path.join(o, "sub"))
    with open(os.path.join(o, "data.txt"), "w") as f:
        f.write("payload")
    with open(os.path.join(o, "sub", "run.sh"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(os.path.join(o, "sub", "run.sh"), 0o775)
    os.symlink("data.txt", os.path.join(o, "link"))
    return o


def test_store_derivation_writes_the_canonical_config_once(S: StorageSettings) -> None:
    """The first call stores config.json (canonical bytes, read-only); later calls do nothing."""
    assert store_derivation(S, DREF, CFG) is True
    p = os.path.join(S.storage, DREF[5:], "config.json")
    with open(p, "rb") as f:
        assert f.read() == b'{"name":"thing","v":1}'
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o444
    assert store_derivation(S, DREF, CFG) is False
    assert os.listdir(S.tmpdir) == []


def test_store_derivation_repairs_a_folder_without_config(S: StorageSettings) -> None:
    """A derivation folder that lost its config.json gets it back."""
    os.makedirs(os.path.join(S.storage, DREF[5:]))
    assert store_derivation(S, DREF, CFG) is True
    assert os.path.isfile(os.path.join(S.storage, DREF[5:], "config.json"))


def test_store_derivation_repairs_a_config_that_is_a_dangling_symlink(S: StorageSettings) -> None:
    """A config.json that is a symlink to nothing counts as missing and is written again."""
    folder = os.path.join(S.storage, DREF[5:])
    os.makedirs(folder)
    os.symlink("nowhere.json", os.path.join(folder, "config.json"))
    assert store_derivation(S, DREF, CFG) is True
    p = os.path.join(folder, "config.json")
    assert not os.path.islink(p)
    with open(p, "rb") as f:
        assert f.read() == b'{"name":"thing","v":1}'
    assert store_derivation(S, DREF, CFG) is False


def test_realization_is_read_only_with_exec_bits_kept(S: StorageSettings, tmp_path: Path) -> None:
    """Every file and folder of a stored realization lacks write bits; exec bits survive."""
    rref = store_realization(S, DREF, CFG, {}, make_output(str(tmp_path)), build_start=1.0)
    root = os.path.join(S.storage, DREF[5:], parse_rref(rref)[0])
    modes = {rel: mode for rel, mode, _ in listing(root)}
    assert modes == {
        "__pylightnix__": 0o555,
        "__pylightnix__/context.json": 0o444,
        "__pylightnix__/meta.json": 0o444,
        "data.txt": 0o444,
        "link": 0o777,
        "sub": 0o555,
        "sub/run.sh": 0o555,
    }
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o555
    assert not os.path.exists(tmp_path / "out")


def test_reserved_files_hold_context_and_metadata(S: StorageSettings, tmp_path: Path) -> None:
    """context.json is the canonical direct context; meta.json has times, host and pid."""
    ctx: Context = {DEP: [DEP_R]}
    rref = store_realization(
        S, DREF, CFG, ctx, make_output(str(tmp_path)), build_start=10.0, build_stop=12.5
    )
    res = os.path.join(S.storage, DREF[5:], parse_rref(rref)[0], "__pylightnix__")
    with open(os.path.join(res, "context.json"), "rb") as f:
        assert f.read() == f'{{"{DEP}":["{DEP_R}"]}}'.encode()
    with open(os.path.join(res, "meta.json")) as f:
        meta = json.load(f)
    assert meta == {
        "build_start": 10.0,
        "build_stop": 12.5,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    assert rrefctx(rref, S) == ctx
    assert rrefmeta(rref, S) == meta
    assert drefrrefsC(DREF, ctx, S) == [rref]
    assert drefrrefsC(DREF, {}, S) == []


def test_identical_outputs_give_one_realization_whatever_the_times(
    S: StorageSettings, tmp_path: Path
) -> None:
    """Metadata is not hashed: the same content in the same context is one RRef, stored once."""
    r1 = store_realization(S, DREF, CFG, {}, make_output(str(tmp_path), "a"), build_start=1.0)
    r2 = store_realization(S, DREF, CFG, {}, make_output(str(tmp_path), "b"), build_start=99.0)
    assert r1 == r2
    assert drefrrefs(DREF, S) == [r1]
    assert rrefmeta(r1, S)["build_start"] == 1.0
    assert sorted(os.listdir(tmp_path)) == ["plx"]  # both output folders were consumed


def test_context_is_part_of_the_rref(S: StorageSettings, tmp_path: Path) -> None:
    """The same content built in another context is another realization."""
    r1 = store_realization(S, DREF, CFG, {}, make_output(str(tmp_path), "a"), build_start=1.0)
    r2 = store_realization(
        S, DREF, CFG, {DEP: [DEP_R]}, make_output(str(tmp_path), "b"), build_start=1.0
    )
    assert r1 != r2
    assert drefrrefs(DREF, S) == sorted([r1, r2])


def test_reserved_name_in_an_output_is_refused(S: StorageSettings, tmp_path: Path) -> None:
    """An output holding __pylightnix__ raises StoreError and the store is unchanged."""
    store_derivation(S, DREF, CFG)
    before = listing(S.storage)
    o = make_output(str(tmp_path))
    os.mkdir(os.path.join(o, "__pylightnix__"))
    with pytest.raises(StoreError) as ei:
        store_realization(S, DREF, CFG, {}, o, build_start=1.0)
    assert str(ei.value) == (
        f"output {o!r} of {DREF} contains '__pylightnix__', a name reserved for "
        "the store's own files: rename that artifact"
    )
    assert listing(S.storage) == before


def test_an_output_that_is_not_a_folder_is_refused(S: StorageSettings, tmp_path: Path) -> None:
    """A file or a symlink to a folder is not an output folder."""
    f = tmp_path / "file"
    f.write_text("x")
    os.symlink(make_output(str(tmp_path)), tmp_path / "ln")
    for bad in (str(f), str(tmp_path / "ln"), str(tmp_path / "missing")):
        with pytest.raises(StoreError) as ei:
            store_realization(S, DREF, CFG, {}, bad, build_start=1.0)
        assert str(ei.value) == (
            f"output {bad!r} of {DREF} is not a folder: a realizer must return folders"
        )
    assert drefrrefs(DREF, S) == []


def _insert_racer(root: str, tag: str, barrier: Any, rounds: int, q: Any) -> None:
    S = mkSS(root)
    got = []
    for i in range(rounds):
        cfg = mkconfig({"name": "race", "round": i})
        dref = mkdref(config_hash(cfg), config_name(cfg))
        o = make_output(os.path.join(S.tmpdir, f"{tag}-{i}"))
        barrier.wait()
        got.append(store_realization(S, dref, cfg, {}, o, build_start=float(i)))
    q.put(got)


def test_two_processes_inserting_the_same_realization_both_succeed(tmp_path: Path) -> None:
    """Concurrent insertion of identical outputs by two processes gives both the same RRef."""
    S = fsinit(mkSS(str(tmp_path / "r")))
    ctx = multiprocessing.get_context("spawn")
    rounds = 20
    barrier = ctx.Barrier(2)
    q = ctx.Queue()
    ps = [
        ctx.Process(target=_insert_racer, args=(S.root, tag, barrier, rounds, q))
        for tag in ("p1", "p2")
    ]
    for p in ps:
        p.start()
    results = [q.get(timeout=60), q.get(timeout=60)]
    for p in ps:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0] == results[1]
    assert len(set(results[0])) == rounds
    for r in results[0]:
        dref = DRef("dref:" + parse_rref(r)[1] + "-race")
        assert drefrrefs(dref, S) == [r]
    leftovers = [n for n in os.listdir(S.tmpdir) if os.listdir(os.path.join(S.tmpdir, n))]
    assert leftovers == []


def test_check_output_walks_the_tree(tmp_path: Path) -> None:
    """check_output refuses a FIFO anywhere in the tree, and accepts files, folders, links."""
    o = make_output(str(tmp_path))
    check_output(DREF, o)
    os.mkfifo(os.path.join(o, "sub", "pipe"))
    check_output(DREF, o, walk=False)
    with pytest.raises(StoreError) as ei:
        check_output(DREF, o)
    pipe = os.path.join(o, "sub", "pipe")
    assert str(ei.value) == (
        f"output {o!r} of {DREF} holds {pipe!r}, which is not a regular file, folder or "
        "symlink (sockets, FIFOs and devices cannot be stored; remove it from the output)"
    )
    assert ei.value.path == pipe  # type: ignore[attr-defined]


@pytest.fixture
def away(S: StorageSettings) -> Iterator[str]:
    """An output folder holding ``a.txt`` on another filesystem than the store (/dev/shm)."""
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(S.storage).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test's temp folder")
    out = tempfile.mkdtemp(dir="/dev/shm")
    try:
        with open(os.path.join(out, "a.txt"), "w") as f:
            f.write("a")
        yield out
    finally:
        shutil.rmtree(out)


def test_an_output_on_another_filesystem_is_refused(S: StorageSettings, away: str) -> None:
    """An output folder outside the store's filesystem gives a StoreError and stays where it is."""
    out = away
    dref = DRef("dref:" + "a" * 32 + "-x")
    with pytest.raises(StoreError) as ei:
        store_realization(S, dref, mkconfig({"name": "x"}), {}, out, build_start=0.0)
    assert str(ei.value) == (
        f"output {out!r} of {dref} is on another filesystem than the store "
        f"{S.storage!r}, so it cannot be moved in atomically: create outputs under the "
        "store's temporary folder (build_wrapper does; a raw realizer can use "
        "build_tmpdir(S))"
    )
    assert ei.value.path == out  # type: ignore[attr-defined]
    assert os.listdir(out) == ["a.txt"]


def test_a_hard_linked_outside_file_is_copied_not_sealed(
    S: StorageSettings, tmp_path: Path
) -> None:
    """A file hard-linked into an output keeps its mode, bytes and mtime; later edits stay out."""
    user = tmp_path / "user.txt"
    user.write_bytes(b"mine")
    os.chmod(user, 0o644)
    os.utime(user, ns=(1_000_000_000, 2_000_000_000))
    exe = tmp_path / "tool.sh"
    exe.write_bytes(b"#!/bin/sh\n")
    os.chmod(exe, 0o750)
    before = os.stat(user)
    o = tmp_path / "build" / "out"
    os.makedirs(o / "sub")
    os.link(user, o / "copy.txt")
    os.link(user, o / "sub" / "again.txt")
    os.link(exe, o / "tool.sh")
    rref = store_realization(S, DREF, CFG, {}, str(o), build_start=0.0)
    after = os.stat(user)
    assert (stat.S_IMODE(after.st_mode), after.st_mtime_ns, after.st_nlink, after.st_ino) == (
        0o644,
        2_000_000_000,
        1,
        before.st_ino,
    )
    assert stat.S_IMODE(os.stat(exe).st_mode) == 0o750
    base = os.path.join(S.storage, DREF[5:], parse_rref(rref)[0])
    stored = os.stat(os.path.join(base, "copy.txt"))
    assert (stored.st_nlink, stat.S_IMODE(stored.st_mode)) == (1, 0o444)
    assert stat.S_IMODE(os.stat(os.path.join(base, "tool.sh")).st_mode) == 0o550
    user.write_bytes(b"edited")
    with open(os.path.join(base, "copy.txt"), "rb") as f:
        assert f.read() == b"mine"
    with open(os.path.join(base, "sub", "again.txt"), "rb") as f:
        assert f.read() == b"mine"
    assert verify([rref], S).ok


def test_hard_links_inside_one_output_become_separate_files(
    S: StorageSettings, tmp_path: Path
) -> None:
    """Two names of one file in an output (even in a read-only folder) become two files."""
    o = tmp_path / "out"
    os.makedirs(o / "ro")
    (o / "ro" / "a").write_bytes(b"same")
    os.link(o / "ro" / "a", o / "ro" / "b")
    os.chmod(o / "ro", 0o555)
    rref = store_realization(S, DREF, CFG, {}, str(o), build_start=0.0)
    base = os.path.join(S.storage, DREF[5:], parse_rref(rref)[0], "ro")
    a, b = os.stat(os.path.join(base, "a")), os.stat(os.path.join(base, "b"))
    assert a.st_ino != b.st_ino
    assert (a.st_nlink, b.st_nlink) == (1, 1)
    assert sorted(os.listdir(base)) == ["a", "b"]


def test_unshare_hardlinks_touches_only_linked_files(tmp_path: Path) -> None:
    """Files with one link keep their inode; only the linked one is copied (one reported)."""
    (tmp_path / "plain").write_bytes(b"p")
    (tmp_path / "outside").write_bytes(b"o" * 100_000)
    os.mkdir(tmp_path / "t")
    os.rename(tmp_path / "plain", tmp_path / "t" / "plain")
    os.link(tmp_path / "outside", tmp_path / "t" / "linked")
    ino = os.stat(tmp_path / "t" / "plain").st_ino
    assert unshare_hardlinks(str(tmp_path / "t")) == 1
    assert os.stat(tmp_path / "t" / "plain").st_ino == ino
    assert (tmp_path / "t" / "linked").read_bytes() == b"o" * 100_000
    assert os.stat(tmp_path / "outside").st_nlink == 1
    assert sorted(os.listdir(tmp_path / "t")) == ["linked", "plain"]


def _cp_al(b: Build) -> None:
    """A realizer that hard-links a user's folder into its output with ``cp -al``."""
    src = build_cattrs(b).src
    subprocess.run(["cp", "-al", src, os.path.join(build_outpath(b), "data")], check=True)


def test_a_realizer_using_cp_al_leaves_the_users_files_alone(
    S: StorageSettings, tmp_path: Path
) -> None:
    """After realize, the user's files keep mode 0644 and edits never reach the realization."""
    src = tmp_path / "mine"
    src.mkdir()
    (src / "a.txt").write_bytes(b"v1")
    os.chmod(src / "a.txt", 0o644)
    clo = instantiate(
        mkdrv, {"name": "cpal", "src": str(src)}, match_only(), build_wrapper(_cp_al), S=S
    )
    rref = realize1(clo)
    assert stat.S_IMODE(os.stat(src / "a.txt").st_mode) == 0o644
    (src / "a.txt").write_bytes(b"v2")
    with open(os.path.join(rref2path(rref, S), "data", "a.txt"), "rb") as f:
        assert f.read() == b"v1"
    assert verify([rref], S).ok


@pytest.mark.parametrize(
    ("start", "stop", "extra"),
    [
        (0.0, 1.5, None),
        (1795930263.8281233, 1795930263.9, None),
        (1e20, -0.0, None),
        (float("inf"), 1.0, None),
        (3, 4, None),
        (1.0, 2.0, {"failed": True}),
    ],
)
def test_meta_json_is_the_indented_sorted_json_of_times_host_and_pid(
    start: float, stop: float, extra: dict[str, Any] | None
) -> None:
    """meta.json bytes are json.dumps(sort_keys=True, indent=1) of the times, host and pid
    (and the extra keys), whichever path writes them."""
    want = {"build_start": start, "build_stop": stop, "host": socket.gethostname()}
    want["pid"] = os.getpid()
    want.update(extra or {})
    assert meta_json(start, stop, extra) == json.dumps(want, sort_keys=True, indent=1).encode()


def test_scan_output_checks_unshares_and_hashes_in_one_walk(tmp_path: Path) -> None:
    """scan_output gives an outside hard-linked file a private copy, hashes the tree as
    hash_tree does and lists what must lose its write bits, with their read-only modes."""
    o = make_output(str(tmp_path))
    outside = tmp_path / "outside.txt"
    outside.write_text("shared")
    os.link(outside, os.path.join(o, "shared.txt"))
    sc = scan_output(DREF, o)
    assert sc.tree == hash_tree(o)
    assert os.stat(outside).st_nlink == 1
    assert os.stat(os.path.join(o, "shared.txt")).st_ino != os.stat(outside).st_ino
    names = ["data.txt", "shared.txt", "sub", "sub/run.sh"]
    want = {
        os.path.join(o, n): stat.S_IMODE(os.lstat(os.path.join(o, n)).st_mode) & ~0o222
        for n in names
    }
    assert dict(sc.writable) == want
    assert sc.dev == os.stat(o).st_dev


def test_scan_output_refuses_what_check_output_refuses(tmp_path: Path) -> None:
    """scan_output raises check_output's errors: a FIFO deep down, the reserved name."""
    o = make_output(str(tmp_path))
    pipe = os.path.join(o, "sub", "pipe")
    os.mkfifo(pipe)
    with pytest.raises(StoreError) as ei:
        scan_output(DREF, o)
    assert str(ei.value) == (
        f"output {o!r} of {DREF} holds {pipe!r}, which is not a regular file, folder or "
        "symlink (sockets, FIFOs and devices cannot be stored; remove it from the output)"
    )
    os.unlink(pipe)
    os.mkdir(os.path.join(o, "__pylightnix__"))
    with pytest.raises(StoreError) as ei:
        scan_output(DREF, o)
    assert str(ei.value) == (
        f"output {o!r} of {DREF} contains '__pylightnix__', a name reserved for "
        "the store's own files: rename that artifact"
    )


def test_an_output_on_another_filesystem_is_refused_before_anything_in_it_changes(
    S: StorageSettings, away: str
) -> None:
    """The engine refuses an output on another filesystem before it copies the output's
    hard-linked files: the user's links stay as they were."""
    out = away
    os.link(os.path.join(out, "a.txt"), os.path.join(out, "b.txt"))

    def raw(S: StorageSettings, dref: DRef, ctx: Context, rarg: Any) -> list[str]:
        return [out]

    clo = instantiate(lambda r=None: mkdrv({"name": "away"}, match_only(), raw, r), S=S)
    with pytest.raises(StoreError) as ei:
        realize1(clo)
    assert str(ei.value) == (
        f"output {out!r} of {clo[0]} is on another filesystem than the store "
        f"{S.storage!r}, so it cannot be moved in atomically: create outputs under the "
        "store's temporary folder (build_wrapper does; a raw realizer can use "
        "build_tmpdir(S))"
    )
    assert os.stat(os.path.join(out, "a.txt")).st_nlink == 2
    assert drefrrefs(clo[0], S) == []
