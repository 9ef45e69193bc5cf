"""Tests of the read-only store inspection functions on real stores."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pylightnix import (
    Build,
    DRef,
    RefError,
    Registry,
    StorageSettings,
    build_cattrs,
    build_outpath,
    build_outpaths,
    build_path,
    build_wrapper,
    instantiate,
    match_all,
    match_only,
    mkdrv,
    realize1,
    realizeMany,
    rref2path,
)
from pylightnix.stages.trivial import mkfile, mknode
from pylightnix.store.inspect import (
    Artifact,
    ConfigDiff,
    FilesDiff,
    catref,
    closure_sizes,
    config_diff,
    du,
    files_diff,
    find,
    lsref,
    rref_files,
    shell,
    shellref,
)
from pylightnix.types import RRef


def _two_outputs(b: Build) -> None:
    text = Path(build_path(b, build_cattrs(b).src)).read_text()
    for i, o in enumerate(build_outpaths(b)):
        Path(o, "out.txt").write_text(f"{text}-{i}\nsecond line\n")
        os.mkdir(os.path.join(o, "sub"))


def _pipe(r: Registry | None = None, opt: int = 1) -> DRef:
    src = mkfile("src", "data", "in.txt", r=r)
    return mkdrv(
        {"name": "pair", "src": [src, "in.txt"], "opt": {"lr": opt, "keep": True}},
        match_all(),
        build_wrapper(_two_outputs, nouts=2),
        r=r,
    )


def test_lsref_lists_artifacts_of_an_rref_and_realizations_of_a_dref(S: StorageSettings) -> None:
    """lsref(rref) lists artifacts without the reserved folder; lsref(dref) lists its RRefs."""
    dref, clo = instantiate(_pipe, S=S)
    rrefs = realizeMany(clo)
    assert lsref(rrefs[0], S) == ["out.txt", "sub"]
    assert lsref(dref, S) == sorted(rrefs)
    assert len(rrefs) == 2


def test_lsref_of_unknown_or_malformed_refs_fails_clearly(S: StorageSettings) -> None:
    """A well-formed but unstored DRef and a non-ref both raise RefError."""
    with pytest.raises(RefError, match="is not in the store"):
        lsref(DRef("dref:" + "0" * 32 + "-ghost"), S)
    with pytest.raises(RefError, match="'hello' is neither a DRef nor an RRef"):
        lsref("hello", S)  # type: ignore[arg-type]


def test_catref_reads_lines_by_rref_refpath_and_single_realization_dref(
    S: StorageSettings,
) -> None:
    """catref accepts an RRef plus a name, a RefPath, and a DRef that has one realization."""
    dref, clo = instantiate(mkfile, "note", "a\nb\n", "n.txt", S=S)
    rref = realize1(clo)
    assert catref(rref, "n.txt", S) == ["a", "b"]
    assert catref([rref, "n.txt"], S=S) == ["a", "b"]
    assert catref([dref, "n.txt"], S=S) == ["a", "b"]
    assert catref(os.path.join(rref2path(rref, S), "n.txt"), S=S) == ["a", "b"]


def test_catref_errors_name_the_problem(S: StorageSettings) -> None:
    """Several realizations, a missing file and binary data each give a RefError saying so."""
    dref, clo = instantiate(_pipe, S=S)
    realizeMany(clo)
    with pytest.raises(RefError, match="has 2 realizations; name the one you mean"):
        catref(dref, "out.txt", S)
    rb = realize1(instantiate(mknode, {"name": "bin"}, {"b.bin": b"\xff\xfe"}, S=S))
    with pytest.raises(RefError, match="is not UTF-8 text"):
        catref(rb, "b.bin", S)
    with pytest.raises(RefError, match="is not a file"):
        catref(rb, "missing.txt", S)


def _open_shell(b: Build) -> None:
    shell(b)


def _shell_stage(r: Registry | None = None) -> DRef:
    return mkdrv({"name": "sh"}, match_all(), build_wrapper(_open_shell), r=r)


def test_shellref_runs_shell_in_the_realization_folder(
    S: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$SHELL is started in the ref's folder (a script records its cwd) and its code returned."""
    rec = tmp_path / "cwd.txt"
    script = tmp_path / "fakeshell"
    script.write_text(f'#!/bin/sh\npwd -P > "{rec}"\nexit 7\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("SHELL", str(script))
    dref, clo = instantiate(mkfile, "note", "x", S=S)
    rref = realize1(clo)
    assert shellref(rref, S) == 7
    assert rec.read_text().strip() == os.path.realpath(rref2path(rref, S))
    shellref(dref, S)
    assert rec.read_text().strip() == os.path.realpath(os.path.dirname(rref2path(rref, S)))
    shellref(None, S)
    assert rec.read_text().strip() == os.path.realpath(S.storage)
    shell(str(tmp_path))
    assert rec.read_text().strip() == os.path.realpath(tmp_path)
    realize1(instantiate(_shell_stage, S=S))
    inside = rec.read_text().strip()
    assert inside.startswith(os.path.realpath(S.tmpdir) + os.sep)
    assert os.path.basename(inside).startswith("out0-")


def test_du_reports_bytes_per_derivation_and_realization(S: StorageSettings) -> None:
    """du counts artifact and reserved-file bytes; a derivation holds its realizations."""
    d, clo = instantiate(mknode, {"name": "sized"}, {"a": "x" * 1000, "b/c": "y" * 500}, S=S)
    rref = realize1(clo)
    usage = du(S)
    rpath = rref2path(rref, S)
    reserved = sum(
        os.lstat(os.path.join(rpath, "__pylightnix__", n)).st_size
        for n in os.listdir(os.path.join(rpath, "__pylightnix__"))
    )
    assert usage.rrefs == {rref: 1500 + reserved}
    ddir = os.path.dirname(rpath)
    # config.json and the index (docs/store-format.md) count too.
    cfg = sum(os.lstat(os.path.join(ddir, n)).st_size for n in ("config.json", "index.tsv"))
    assert usage.drefs == {d: 1500 + reserved + cfg}
    assert usage.total == 1500 + reserved + cfg


def test_find_by_name_glob_and_age(S: StorageSettings) -> None:
    """find filters by a glob on the stage name and by build start newer than N seconds."""
    r1 = realize1(instantiate(mkfile, "alpha-1", "1", S=S))
    r2 = realize1(instantiate(mkfile, "alpha-2", "2", S=S))
    r3 = realize1(instantiate(mkfile, "beta", "3", S=S))
    assert find("alpha-*", S=S) == [r1, r2]  # oldest build first
    assert set(find(S=S)) == {r1, r2, r3}
    assert find(newer=3600, S=S) == find(S=S)
    assert find("beta", newer=3600, S=S) == [r3]
    # build_start of each is at most "now"; a window ending before them finds nothing.
    assert find(newer=-(time.time() + 10), S=S) == []


def test_config_diff_recurses_and_reports_added_removed_changed() -> None:
    """Nested dict keys get key paths; lists and type changes count as changed values."""
    d = config_diff(
        {"name": "m", "opt": {"lr": 1, "drop": 0.5}, "l": [1, 2], "t": 1},
        {"name": "m", "opt": {"lr": 2, "new": "x"}, "l": [1, 3], "t": 1.0},
    )
    assert d == ConfigDiff(
        added={("opt", "new"): "x"},
        removed={("opt", "drop"): 0.5},
        changed={("l",): ([1, 2], [1, 3]), ("opt", "lr"): (1, 2), ("t",): (1, 1.0)},
    )
    assert str(d).splitlines() == [
        "~ l: [1, 2] -> [1, 3]",
        "- opt.drop: 0.5",
        "~ opt.lr: 1 -> 2",
        "+ opt.new: 'x'",
        "~ t: 1 -> 1.0",
    ]
    assert config_diff({"a": 1}, {"a": 1}).same


def _kinds(b: Build) -> None:
    o = build_outpaths(b)[0]
    Path(o, "run.sh").write_text("#!/bin/sh\n")
    os.chmod(os.path.join(o, "run.sh"), 0o755)
    os.mkdir(os.path.join(o, "d"))
    Path(o, "d", "f.txt").write_text(build_cattrs(b).text)
    os.symlink("d/f.txt", os.path.join(o, "link"))
    os.symlink("d", os.path.join(o, "dirlink"))


def _kinds_stage(r: Registry | None = None, text: str = "abc") -> DRef:
    return mkdrv({"name": "kinds", "text": text}, match_all(), build_wrapper(_kinds), r=r)


def test_rref_files_lists_files_executables_and_links_in_path_order(S: StorageSettings) -> None:
    """rref_files gives every file, executable and symlink (links to folders too), sorted."""
    rref = realize1(instantiate(_kinds_stage, S=S))
    assert rref_files(rref, S) == [
        Artifact("d/f.txt", "file", 3),
        Artifact("dirlink", "link", 1, "d"),
        Artifact("link", "link", 7, "d/f.txt"),
        Artifact("run.sh", "exec", 10),
    ]


def test_files_diff_reports_added_removed_and_changed_paths(S: StorageSettings) -> None:
    """files_diff finds one-sided paths and same-size files whose bytes differ."""
    a = realize1(instantiate(mknode, {"name": "fa"}, {"same": "x", "both": "1", "a": "."}, S=S))
    b = realize1(instantiate(mknode, {"name": "fb"}, {"same": "x", "both": "2", "b": "."}, S=S))
    assert files_diff(a, b, S) == FilesDiff(("a",), ("b",), ("both",))
    assert files_diff(a, a, S) == FilesDiff((), (), ())
    k1 = realize1(instantiate(_kinds_stage, S=S))
    k2 = realize1(instantiate(_kinds_stage, text="xyz", S=S))
    assert files_diff(k1, k2, S) == FilesDiff((), (), ("d/f.txt",))


def test_closure_sizes_add_every_dependency_once(S: StorageSettings) -> None:
    """A realization's closure size is its own bytes plus those of everything it was built from."""
    top = realizeMany(instantiate(_pipe, S=S))
    usage = du(S)
    sizes = closure_sizes(usage, S)
    (src,) = [r for r in usage.rrefs if r not in top]
    assert sizes[src] == usage.rrefs[src]
    assert all(sizes[t] == usage.rrefs[t] + usage.rrefs[src] for t in top)


def _links(b: Build) -> None:
    out = build_outpath(b)
    with open(os.path.join(out, "data.txt"), "w") as f:
        f.write("inside\n")
    os.mkdir(os.path.join(out, "sub"))
    for name, target in build_cattrs(b).links.items():
        os.symlink(target, os.path.join(out, name))


def _linked(S: StorageSettings, links: dict[str, str]) -> RRef:
    clo = instantiate(
        mkdrv, {"name": "links", "links": links}, match_only(), build_wrapper(_links), S=S
    )
    return realize1(clo)


def test_catref_never_follows_a_symlink_out_of_the_store(
    S: StorageSettings, tmp_path: Path
) -> None:
    """A link to a file outside the store is refused, naming where it leads; nothing is read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    r = _linked(S, {"out": str(secret), "rel": "../../../../secret.txt", "dir": str(tmp_path)})
    for name in ("out", "dir/secret.txt"):
        with pytest.raises(RefError) as ei:
            catref(r, name.split("/"), S)
        assert str(ei.value) == (
            f"catref: {name!r} of {rref2path(r, S)} is a symlink leading outside the store "
            f"(to {str(secret)!r}): reading through the store never leaves it"
        )
    with pytest.raises(RefError, match="is a symlink leading outside the store"):
        catref([r, "rel"], S=S)
    with pytest.raises(RefError) as ei:
        catref(r, ["..", "..", "..", "secret.txt"], S)
    assert "is outside the realization: reading through the store never leaves it" in str(ei.value)


def test_catref_follows_symlinks_inside_the_store(S: StorageSettings) -> None:
    """Links to a file of the same realization or of another realization keep working."""
    first = _linked(S, {"same": "data.txt"})
    other = os.path.join(rref2path(first, S), "data.txt")
    r = _linked(S, {"same": "data.txt", "up": "sub/../data.txt", "dep": other})
    assert catref(r, "same", S) == ["inside"]
    assert catref(r, "up", S) == ["inside"]
    assert catref(r, "dep", S) == ["inside"]
    assert catref(first, "same", S) == ["inside"]
