"""Tests of mknode, mkfile, redefine and realized."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from pylightnix import (
    Build,
    BuildError,
    ConfigError,
    DRef,
    NotRealizedError,
    Registry,
    StorageSettings,
    alldrefs,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_path,
    build_wrapper,
    drefcfg,
    instantiate,
    match_all,
    match_some,
    mkdrv,
    realize1,
    realizeMany,
    rref2path,
)
from pylightnix.stages.trivial import mkfile, mknode, realized, redefine


def _files(rref: str, S: StorageSettings) -> dict[str, bytes]:
    root = rref2path(rref, S)  # type: ignore[arg-type]
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if not rel.startswith("__pylightnix__"):
                out[rel] = Path(p).read_bytes()
    return out


def test_mknode_writes_text_bytes_and_nested_files(S: StorageSettings) -> None:
    """mknode stores str as UTF-8 and bytes as-is, creating sub-folders."""
    rref = realize1(
        instantiate(
            mknode, {"name": "node", "x": 1}, {"a.txt": "héllo", "d/b.bin": b"\x00\xff"}, S=S
        )
    )
    assert _files(rref, S) == {"a.txt": "héllo".encode(), "d/b.bin": b"\x00\xff"}
    assert rref.endswith("-node")


def test_mknode_contents_are_part_of_the_dref(S: StorageSettings) -> None:
    """Equal contents give the same DRef and RRef; other contents give another DRef."""
    d1, c1 = instantiate(mknode, {"name": "n"}, {"f": "1"}, S=S)
    d2, c2 = instantiate(mknode, {"name": "n"}, {"f": "1"}, S=S)
    d3, _ = instantiate(mknode, {"name": "n"}, {"f": "2"}, S=S)
    assert (d1 == d2, d1 == d3) == (True, False)
    assert realize1(c1) == realize1(c2)


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        ({"../x": "a"}, "artifact name '../x' must be a relative path"),
        ({"/etc/x": "a"}, "artifact name '/etc/x' must be a relative path"),
        ({"__pylightnix__/context.json": "a"}, "not '__pylightnix__'"),
        ({"ok": 3}, "artifact 'ok' is a int; give str or bytes"),
    ],
)
def test_mknode_refuses_bad_artifacts(
    S: StorageSettings, artifacts: dict[str, Any], message: str
) -> None:
    """Escaping, absolute or reserved names and non-text contents are refused at instantiate."""
    with pytest.raises(ConfigError) as ei:
        instantiate(mknode, {"name": "n"}, artifacts, S=S)
    assert message in str(ei.value)
    assert list(alldrefs(S)) == []


def test_mkfile_holds_one_file(S: StorageSettings) -> None:
    """mkfile(name, contents, filename) realizes to exactly that file."""
    rref = realize1(instantiate(mkfile, "greeting", "hi\n", "g.txt", S=S))
    assert _files(rref, S) == {"g.txt": b"hi\n"}
    assert _files(realize1(instantiate(mkfile, "plain", b"x", S=S)), S) == {"plain": b"x"}


def _shout(b: Build) -> None:
    with open(build_path(b, build_cattrs(b).src)) as f:
        text = f.read()
    with open(os.path.join(build_outpath(b), "out.txt"), "w") as f:
        f.write(text.upper() + build_cattrs(b).suffix)


def _pipeline(r: Registry | None = None) -> DRef:
    src = mkfile("src", "hello", "in.txt", r=r)
    return mkdrv(
        {"name": "shout", "src": [src, "in.txt"], "suffix": "!"},
        match_all(),
        build_wrapper(_shout),
        r=r,
    )


def _set_suffix(c: dict[str, Any]) -> None:
    c["suffix"] = "?"


def _write_two(b: Build) -> None:
    for i, o in enumerate(build_outpaths(b)):
        with open(os.path.join(o, "out.txt"), "w") as f:
            f.write(f"other{i}")


def test_redefine_changes_config_and_keeps_dependencies(S: StorageSettings) -> None:
    """A redefined config gives a new DRef whose build still sees the original dependency."""
    plain = realize1(instantiate(_pipeline, S=S))
    changed, clo = instantiate(redefine(_pipeline, new_config=_set_suffix), S=S)
    assert drefcfg(changed, S)["suffix"] == "?"
    assert [d.dref for d in clo.derivations][-1] == changed
    assert len(clo.derivations) == 2
    assert _files(plain, S) == {"out.txt": b"HELLO!"}
    assert _files(realize1(clo), S) == {"out.txt": b"HELLO?"}


def test_redefine_replaces_realizer_and_matcher(S: StorageSettings) -> None:
    """new_realizer and new_matcher take the place of the originals for the final derivation."""
    st = redefine(_pipeline, new_realizer=build_wrapper(_write_two, nouts=2))
    rrefs = realizeMany(instantiate(st, S=S))
    assert sorted(_files(r, S)["out.txt"] for r in rrefs) == [b"other0", b"other1"]
    st2 = redefine(_pipeline, new_matcher=match_some(1))
    assert realizeMany(instantiate(st2, S=S)) == [min(rrefs)]


def test_redefined_stage_pickles() -> None:
    """A redefine of module-level parts survives pickling (it crosses processes)."""
    st = redefine(_pipeline, new_config=_set_suffix)
    assert pickle.loads(pickle.dumps(st)) == st


def test_redefine_needs_a_single_dref(S: StorageSettings) -> None:
    """A stage returning a list is refused with a message naming what it returned."""

    def two(r: Registry | None = None) -> list[DRef]:
        return [mkfile("a", "1", r=r), mkfile("b", "2", r=r)]

    with pytest.raises(Exception, match="needs a stage that returns one DRef"):
        instantiate(redefine(two), S=S)


def test_realized_reuses_an_existing_realization(S: StorageSettings) -> None:
    """realized(stage) gives the stored realization when there is one."""
    rref = realize1(instantiate(_pipeline, S=S))
    assert realize1(instantiate(realized(_pipeline), S=S)) == rref


def test_realized_fails_clearly_when_a_build_is_needed(S: StorageSettings) -> None:
    """Without a stored realization, realized(stage) fails with NotRealizedError."""
    dref, clo = instantiate(realized(_pipeline), S=S)
    with pytest.raises(BuildError) as ei:
        realize1(clo)
    cause = ei.value.__cause__
    assert isinstance(cause, NotRealizedError)
    assert cause.dref == dref
    assert "realized(stage) forbids building it" in str(ei.value)
    assert os.listdir(S.tmpdir) == []


def test_builtin_stage_callables_pickle(S: StorageSettings, tmp_path: Path) -> None:
    """Matchers and realizers of every built-in stage survive pickling (process executors)."""
    from pylightnix.stages.fetch import fetchlocal, fetchurl, unpackref

    f = tmp_path / "a.txt"
    f.write_text("x")

    def stages(r: Registry | None = None) -> list[DRef]:
        u = fetchurl("http://127.0.0.1/a.zip", sha256="a" * 64, mode="as-is", r=r)
        return [
            u,
            fetchlocal(str(f), sha256="b" * 64, r=r),
            unpackref([u, "a.zip"], r=r),
            mknode({"name": "n"}, {"f": b"1"}, r=r),
            realized(_pipeline)(r=r),
        ]

    _, clo = instantiate(stages, S=S)
    for d in clo.derivations:
        for part in (d.matcher, d.realizer):
            assert pickle.loads(pickle.dumps(part)) == part
