"""Tests of hashing.py: the tree hash (golden vectors, sensitivity, invariance) and context hash."""

from __future__ import annotations

import hashlib
import os
import random
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix.config import canonical_json
from pylightnix.errors import StoreError
from pylightnix.hashing import (
    _PARALLEL_MIN_BYTES,
    context_hash,
    context_json,
    hash_file,
    hash_tree,
    realization_hash,
)
from pylightnix.types import DRef, RRef
from tests.strategies import drefs, rrefs, trees

GOLDEN_TREE = "9040d9c9606b1b34c73bcc8df58fc149dbb6446577253077783d5bd52e209793"
GOLDEN_EMPTY_TREE = "df717d177f0e2da73598d59eae76bf1bab955d7eca2c5ee3f8f4e002673e7b6d"
GOLDEN_CONTEXT = "97a6ad0ee1b78db4d301336071e5e34f420ee56ecd45fe21b93f0cc557b80870"
GOLDEN_RHASH = "af3f7d860420dae65ca34ec0a25ec3a9"


def _write(p: Path, data: bytes, *, exe: bool = False) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, 0o755 if exe else 0o644)


def make_tree(root: Path, order: int = 0) -> Path:
    """The fixed tree of the golden vector, created in one of two orders."""
    root.mkdir(parents=True, exist_ok=True)
    steps = [
        lambda: _write(root / "a.txt", b"hello\n"),
        lambda: _write(root / "bin" / "run.sh", b"#!/bin/sh\necho hi\n", exe=True),
        lambda: os.symlink("a.txt", root / "link"),
        (root / "empty").mkdir,
        lambda: _write(root / "sub" / "deep" / "z.bin", bytes(range(256))),
        lambda: _write(root / "B.txt", b""),
    ]
    for s in steps if order == 0 else reversed(steps):
        s()
    return root


def test_golden_tree_hash(tmp_path: Path) -> None:
    """A fixed tree hashes to a fixed hex digest (the on-disk format never changes silently)."""
    assert hash_tree(str(make_tree(tmp_path / "t"))) == GOLDEN_TREE


def test_golden_empty_tree_context_and_rref_hash(tmp_path: Path) -> None:
    """An empty folder, a fixed context and a fixed realization have fixed hashes."""
    (tmp_path / "e").mkdir()
    assert hash_tree(str(tmp_path / "e")) == GOLDEN_EMPTY_TREE
    ctx = {DRef("dref:" + "a" * 32 + "-x"): [RRef("rref:" + "b" * 32 + "-" + "a" * 32 + "-x")]}
    assert context_hash(ctx) == GOLDEN_CONTEXT
    assert realization_hash(GOLDEN_CONTEXT, GOLDEN_TREE) == GOLDEN_RHASH


def test_tree_encoding_matches_its_documentation(tmp_path: Path) -> None:
    """The hash of a one-file tree is computed exactly as the module docstring says."""
    (tmp_path / "t").mkdir()
    _write(tmp_path / "t" / "f", b"data")
    fd = hashlib.sha256(b"data").digest()
    expected = hashlib.sha256(b"pylightnix-tree-v1\0" + b"f" + b"f\0" + fd + b"\0").hexdigest()
    assert hash_tree(str(tmp_path / "t")) == expected


def test_same_tree_in_other_orders_and_folders_hashes_the_same(tmp_path: Path) -> None:
    """Creation order and location do not matter."""
    a = make_tree(tmp_path / "one", order=0)
    b = make_tree(tmp_path / "x" / "two", order=1)
    assert hash_tree(str(a)) == hash_tree(str(b)) == GOLDEN_TREE


def test_times_and_non_exec_modes_do_not_matter(tmp_path: Path) -> None:
    """Modification times and write/group/other permission bits are not hashed."""
    t = make_tree(tmp_path / "t")
    os.utime(t / "a.txt", (1, 1))
    os.chmod(t / "a.txt", 0o400)
    os.chmod(t / "bin" / "run.sh", 0o700)
    os.chmod(t / "sub", 0o500)
    try:
        assert hash_tree(str(t)) == GOLDEN_TREE
    finally:
        os.chmod(t / "sub", 0o755)


def _rename(t: Path) -> None:
    os.rename(t / "a.txt", t / "a2.txt")


def _move_to_subfolder(t: Path) -> None:
    os.rename(t / "B.txt", t / "sub" / "B.txt")


def _flip_exec(t: Path) -> None:
    os.chmod(t / "a.txt", 0o744)


def _flip_exec_off(t: Path) -> None:
    os.chmod(t / "bin" / "run.sh", 0o644)


def _retarget_link(t: Path) -> None:
    os.unlink(t / "link")
    os.symlink("B.txt", t / "link")


def _change_one_byte(t: Path) -> None:
    data = bytearray((t / "sub" / "deep" / "z.bin").read_bytes())
    data[100] ^= 1
    (t / "sub" / "deep" / "z.bin").write_bytes(bytes(data))


def _add_empty_folder(t: Path) -> None:
    (t / "empty2").mkdir()


def _file_to_link(t: Path) -> None:
    os.unlink(t / "B.txt")
    os.symlink("nothing", t / "B.txt")


def _swap_contents(t: Path) -> None:
    a = (t / "a.txt").read_bytes()
    (t / "a.txt").write_bytes(b"")
    (t / "B.txt").write_bytes(a)


@pytest.mark.parametrize(
    "change",
    [
        _rename,
        _move_to_subfolder,
        _flip_exec,
        _flip_exec_off,
        _retarget_link,
        _change_one_byte,
        _add_empty_folder,
        _file_to_link,
        _swap_contents,
    ],
)
def test_every_meaningful_change_changes_the_hash(tmp_path: Path, change: object) -> None:
    """Renaming, moving, exec bit, link target, one byte, structure: each changes the hash."""
    t = make_tree(tmp_path / "t")
    change(t)  # type: ignore[operator]
    assert hash_tree(str(t)) != GOLDEN_TREE


def test_exclude_leaves_out_top_level_names(tmp_path: Path) -> None:
    """Excluded top-level names do not count; the same name deeper does."""
    t = make_tree(tmp_path / "t")
    (t / "__pylightnix__").mkdir()
    _write(t / "__pylightnix__" / "meta.json", b"{}")
    assert hash_tree(str(t), exclude=["__pylightnix__"]) == GOLDEN_TREE
    assert hash_tree(str(t)) != GOLDEN_TREE


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    """A FIFO in the tree raises StoreError naming it."""
    t = make_tree(tmp_path / "t")
    fifo = t / "sub" / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(StoreError) as ei:
        hash_tree(str(t))
    assert str(ei.value) == (
        f"cannot hash {str(fifo)!r}: it is not a regular file, folder or symlink "
        "(sockets, FIFOs and devices cannot be stored; remove it from the output)"
    )
    assert ei.value.path == str(fifo)  # type: ignore[attr-defined]


def test_large_file_hash_streams_and_equals_sha256(tmp_path: Path) -> None:
    """A file larger than any block hashes to hashlib.sha256 of its bytes."""
    data = os.urandom(3 * (1 << 20) + 12345)
    p = tmp_path / "big"
    p.write_bytes(data)
    assert hash_file(str(p)) == hashlib.sha256(data).digest()


def test_parallel_and_serial_hashing_agree(tmp_path: Path) -> None:
    """A tree big enough to hash in threads gives the same digest with 1 or 4 threads."""
    t = tmp_path / "t"
    for i in range(6):
        _write(t / f"d{i % 2}" / f"f{i}", os.urandom(_PARALLEL_MIN_BYTES // 3 + i))
    assert hash_tree(str(t), threads=1) == hash_tree(str(t), threads=4)


def test_context_hash_ignores_order() -> None:
    """A context hash does not depend on dict or list order; its content changes it."""
    d1, d2 = DRef("dref:" + "1" * 32 + "-a"), DRef("dref:" + "2" * 32 + "-b")
    r1 = RRef("rref:" + "3" * 32 + "-" + "1" * 32 + "-a")
    r2 = RRef("rref:" + "4" * 32 + "-" + "1" * 32 + "-a")
    r3 = RRef("rref:" + "5" * 32 + "-" + "2" * 32 + "-b")
    assert context_hash({d1: [r1, r2], d2: [r3]}) == context_hash({d2: [r3], d1: [r2, r1]})
    assert context_hash({d1: [r1]}) != context_hash({d1: [r2]})
    assert context_hash({}) != context_hash({d1: [r1]})


def test_file_modes_are_checked_on_the_owner_exec_bit(tmp_path: Path) -> None:
    """Only the owner's exec bit marks a file executable."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write(tmp_path / "a" / "f", b"x")
    _write(tmp_path / "b" / "f", b"x")
    os.chmod(tmp_path / "b" / "f", 0o644 | stat.S_IXGRP | stat.S_IXOTH)
    assert hash_tree(str(tmp_path / "a")) == hash_tree(str(tmp_path / "b"))


def test_hashing_streams_in_flat_memory(tmp_path: Path) -> None:
    """Hashing a 64 MiB file never holds more than a few MiB of it in Python memory."""
    import tracemalloc

    t = tmp_path / "t"
    t.mkdir()
    with open(t / "big.bin", "wb") as f:
        f.truncate(64 << 20)  # sparse: quick to make, 64 MiB to read
    tracemalloc.start()
    try:
        digest = hash_tree(str(t))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    zeros = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(64):
        zeros.update(block)
    entry = b"f" + b"big.bin\0" + zeros.digest() + b"\0"
    assert digest == hashlib.sha256(b"pylightnix-tree-v1\0" + entry).hexdigest()


def materialize(root: str, tree: dict[str, object], reverse: bool = False) -> None:
    """Create a strategies.trees value under ``root`` (optionally in reverse name order)."""
    os.makedirs(root, exist_ok=True)
    for name in sorted(tree, reverse=reverse):
        v = tree[name]
        p = os.path.join(root, name)
        if isinstance(v, dict):
            materialize(p, v, reverse)
        else:
            kind, data = v  # type: ignore[misc]
            if kind == "l":
                os.symlink(data, p)
            else:
                with open(p, "wb") as f:
                    f.write(data)
                os.chmod(p, 0o755 if kind == "x" else 0o644)


@settings(max_examples=60, deadline=None)
@given(trees, st.randoms(use_true_random=False))
def test_random_trees_hash_by_content_only(tree: dict[str, object], rnd: random.Random) -> None:
    """Any tree built in two orders in two places hashes the same; renaming any entry changes it."""
    with tempfile.TemporaryDirectory() as d:
        materialize(os.path.join(d, "a"), tree)
        materialize(os.path.join(d, "b", "c"), tree, reverse=True)
        h = hash_tree(os.path.join(d, "a"))
        assert hash_tree(os.path.join(d, "b", "c")) == h
        entries = [
            os.path.join(dp, n) for dp, dns, fns in os.walk(os.path.join(d, "a")) for n in dns + fns
        ]
        if entries:
            victim = rnd.choice(entries)
            os.rename(victim, os.path.join(os.path.dirname(victim), "renamed~"))
            assert hash_tree(os.path.join(d, "a")) != h


def test_a_small_file_that_changed_since_its_lstat_is_hashed_as_it_is_now(tmp_path: Path) -> None:
    """A small file hashed after it grew or shrank (since the walk's lstat) gives the digest
    of its current bytes, as a large file does."""
    from pylightnix.hashing import digest_tree, walk_tree

    (tmp_path / "f.txt").write_bytes(b"abc")
    for now in (b"abcdef" * 1000, b"a", b""):
        w = walk_tree(str(tmp_path))
        (tmp_path / "f.txt").write_bytes(now)
        assert digest_tree(w) == hash_tree(str(tmp_path))


ctx_texts = st.text(max_size=6) | st.text(alphabet='"\\\x00\x1f\u2028é', max_size=4)


@settings(deadline=None)
@given(
    st.dictionaries(drefs | ctx_texts, st.lists(rrefs | ctx_texts, max_size=3), max_size=4)
    | st.dictionaries(st.integers(), st.lists(st.integers(), max_size=3), max_size=3)
)
def test_context_json_is_the_canonical_json_of_the_sorted_context(ctx: dict[Any, Any]) -> None:
    """Refs or any text (quotes, controls, non-ASCII) or other values: the canonical bytes of
    the context with its lists sorted and its keys as text."""
    assert context_json(ctx) == canonical_json({str(k): sorted(v) for k, v in ctx.items()})


def test_context_json_of_non_text_refs_goes_through_the_general_encoder() -> None:
    """A context whose lists hold other values than text still encodes (or fails) as before."""
    assert context_json({DRef("dref:x"): [2, 1]}) == b'{"dref:x":[1,2]}'  # type: ignore[list-item]
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        context_json({DRef("dref:x"): [float("nan")]})  # type: ignore[list-item]
