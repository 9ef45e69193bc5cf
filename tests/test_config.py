"""Tests of config.py: validation, canonical JSON and hashing, deps, promises, self-refs."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix import StorageSettings, instantiate, match_only, mkdrv
from pylightnix.config import (
    MAX_DEPTH,
    Config,
    _fast_copy,
    _NotPlainError,
    canonical_json,
    canonical_tree,
    cfg_attrs,
    check_json,
    config_deps,
    config_dict,
    config_dref,
    config_hash,
    config_name,
    config_promises,
    config_serialize,
    copy_json,
    is_refpath,
    mkconfig,
    mkrefpath,
    resolve_selfrefs,
    selfref,
)
from pylightnix.errors import ConfigError, RefError
from pylightnix.refs import MAX_NAME_LEN, mkdref
from pylightnix.store.layout import dref2path
from pylightnix.types import DRef
from tests.strategies import (
    StrSub,
    ascii_values,
    drefs,
    json_dicts,
    json_values,
    long_names,
    odd_dicts,
    odd_values,
    shuffled,
    surrogate_texts,
)

D1 = DRef("dref:" + "a" * 32 + "-one")
D2 = DRef("dref:" + "b" * 32 + "-two")


# No hypothesis deadlines: a loaded 2-core CI machine must not fail a correct test.
@settings(deadline=None)
@given(json_dicts, st.randoms(use_true_random=False))
def test_key_order_never_changes_the_hash(d: dict[str, Any], rnd: random.Random) -> None:
    """Shuffling the keys of every nested dict gives the same canonical bytes and hash."""
    s = shuffled(d, rnd)
    assert config_serialize(mkconfig(s)) == config_serialize(mkconfig(d))
    assert config_hash(mkconfig(s)) == config_hash(mkconfig(d))


@settings(deadline=None)
@given(json_dicts, json_values)
def test_a_changed_value_changes_the_hash(d: dict[str, Any], v: Any) -> None:
    """Setting a key to a different value changes the config hash."""
    d2 = dict(d)
    d2["__k"] = v
    d3 = dict(d)
    d3["__k"] = [v]
    assert config_hash(mkconfig(d2)) != config_hash(mkconfig(d3))


@settings(deadline=None)
@given(json_dicts)
def test_canonical_json_round_trips(d: dict[str, Any]) -> None:
    """Canonical bytes parse back to the same data, with sorted keys and no spaces."""
    b = canonical_json(d)
    assert json.loads(b) == d
    assert b == json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    assert copy_json(d) == d


def test_int_and_float_and_bool_are_distinct() -> None:
    """1, 1.0 and True are different configs (their canonical JSON differs)."""
    hs = {config_hash(mkconfig({"x": v})) for v in (1, 1.0, True)}
    assert len(hs) == 3


def test_unicode_is_hashed_as_utf8() -> None:
    """Non-ASCII text is serialized as UTF-8, not escaped."""
    assert config_serialize(mkconfig({"t": "é"})) == '{"t":"é"}'.encode()


class F(float):
    """A numpy-like float subclass."""


class I(int):  # noqa: E742
    """A numpy-like int subclass."""


@pytest.mark.parametrize(
    ("cfg", "message", "key_path"),
    [
        (
            {"a": {"b": [1, float("nan")]}},
            "config['a']['b'][1] is nan: NaN and Infinity are not JSON (use None or a string)",
            ("a", "b", 1),
        ),
        (
            {"x": float("inf")},
            "config['x'] is inf: NaN and Infinity are not JSON (use None or a string)",
            ("x",),
        ),
        (
            {"x": -float("inf")},
            "config['x'] is -inf: NaN and Infinity are not JSON (use None or a string)",
            ("x",),
        ),
        (
            {"a": (1, 2)},
            "config['a'] is a tuple, not JSON data: use a list instead of a tuple",
            ("a",),
        ),
        (
            {"a": [b"x"]},
            "config['a'][0] is a bytes, not JSON data: decode bytes to str "
            "(or store them as an artifact)",
            ("a", 0),
        ),
        (
            {"s": {1, 2}},
            "config['s'] is a set, not JSON data: use a sorted list instead of a set",
            ("s",),
        ),
        (
            {"s": frozenset()},
            "config['s'] is a frozenset, not JSON data: use a sorted list instead of a frozenset",
            ("s",),
        ),
        (
            {"d": {1: "x"}},
            "config['d'] has a key 1 of type int: config keys must be str",
            ("d", 1),
        ),
        (
            {"f": F(1.5)},
            "config['f'] is a F, not JSON data: convert it to str, int, float, bool, "
            "None, list or dict",
            ("f",),
        ),
        (
            {"i": [I(3)]},
            "config['i'][0] is a I, not JSON data: convert it to str, int, float, bool, "
            "None, list or dict",
            ("i", 0),
        ),
        (
            {"o": object},
            "config['o'] is a type, not JSON data: convert it to str, int, float, bool, "
            "None, list or dict",
            ("o",),
        ),
    ],
)
def test_non_json_values_are_refused_with_their_key_path(
    cfg: dict[str, Any], message: str, key_path: tuple[Any, ...]
) -> None:
    """Every non-JSON value raises ConfigError naming its key path and the fix."""
    with pytest.raises(ConfigError) as ei:
        mkconfig(cfg)
    assert str(ei.value) == message
    assert ei.value.key_path == key_path  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        check_json(cfg)


def test_a_config_must_be_a_dict() -> None:
    """A list (or anything else) as a whole config is refused with a hint."""
    with pytest.raises(ConfigError) as ei:
        mkconfig([1, 2])  # type: ignore[arg-type]
    assert str(ei.value) == "a config must be a dict, got list (wrap it: {'value': ...})"


def test_a_bad_name_is_refused() -> None:
    """config['name'] must be a valid object name."""
    with pytest.raises(ConfigError) as ei:
        mkconfig({"name": "my stage"})
    assert str(ei.value) == (
        "config['name'] is 'my stage': names may use only letters, digits, '-' and '_'"
    )
    assert ei.value.key_path == ("name",)  # type: ignore[attr-defined]


def test_config_name_defaults_to_unnamed() -> None:
    """A config without a name is named 'unnamed'."""
    assert config_name(mkconfig({"x": 1})) == "unnamed"
    assert config_name(mkconfig({"name": "abc"})) == "abc"


def test_mkconfig_copies_its_input_and_config_dict_copies_out() -> None:
    """Mutating the input dict or a config_dict result never changes the Config."""
    d: dict[str, Any] = {"a": [1, {"b": 2}]}
    c = mkconfig(d)
    d["a"][1]["b"] = 99
    out = config_dict(c)
    out["a"].append(3)
    assert config_dict(c) == {"a": [1, {"b": 2}]}
    assert config_serialize(c) == b'{"a":[1,{"b":2}]}'


def test_deps_are_found_anywhere_sorted_and_unique() -> None:
    """DRefs are found as values, in lists and as RefPath heads; keys and text are not deps."""
    c = mkconfig(
        {
            "x": D2,
            "nested": {"l": [[D1, "f.txt"], {"deep": D2}]},
            "text": "see " + D1,
            D1: "as a key",
        }
    )
    assert config_deps(c) == [D1, D2]
    assert config_deps(mkconfig({"a": 1})) == []


@settings(deadline=None)
@given(st.lists(drefs, max_size=5))
def test_deps_scan_finds_every_generated_dref(ds: list[DRef]) -> None:
    """Every DRef placed in a config is found, once."""
    c = mkconfig({"ds": ds, "nested": [{"d": d} for d in ds]})
    assert config_deps(c) == sorted(set(ds))


def test_promises_are_listed_with_their_key_paths() -> None:
    """Every [selfref, ...] is a promise, reported with where it is."""
    c = mkconfig(
        {
            "out": [selfref, "model.bin"],
            "more": {"logs": [selfref, "logs", "train.txt"]},
            "l": [1, [selfref, "a"]],
        }
    )
    assert config_promises(c) == [
        (("out",), ["model.bin"]),
        (("more", "logs"), ["logs", "train.txt"]),
        (("l", 1), ["a"]),
    ]


@pytest.mark.parametrize("bad", [[selfref], [selfref, ""], [selfref, 3]])
def test_a_promise_naming_no_file_is_refused(bad: list[Any]) -> None:
    """A promise without a non-empty file path is a ConfigError naming it."""
    with pytest.raises(ConfigError) as ei:
        config_promises(mkconfig({"p": bad}))
    assert str(ei.value) == (
        f"config['p'] is a promise {bad!r} that names no file: write it as [selfref, 'dir', 'file']"
    )


@pytest.mark.parametrize("bad", [[selfref, ".."], [selfref, "a", "../b"], [selfref, "/etc/x"]])
def test_a_promise_pointing_outside_the_output_is_refused(bad: list[Any]) -> None:
    """Promises are files inside the output: '..' and absolute paths are ConfigErrors."""
    with pytest.raises(ConfigError) as ei:
        config_promises(mkconfig({"p": bad}))
    assert str(ei.value) == (
        f"config['p'] is a promise {bad!r} that points outside the output folder: "
        "use a relative path without '..'"
    )
    assert config_promises(mkconfig({"p": [selfref, "a..b", "c/d.txt"]})) == [
        (("p",), ["a..b", "c/d.txt"])
    ]


def test_selfrefs_resolve_to_the_derivation() -> None:
    """resolve_selfrefs turns every [selfref, ...] into [dref, ...] and leaves the rest."""
    c = mkconfig({"out": [selfref, "a", "b"], "n": [[selfref, "x"]], "dep": D2, "k": 1})
    assert resolve_selfrefs(c, D1) == {
        "out": [D1, "a", "b"],
        "n": [[D1, "x"]],
        "dep": D2,
        "k": 1,
    }
    assert config_dict(c)["out"] == [selfref, "a", "b"]


def test_refpaths() -> None:
    """RefPaths are [DRef, str...] lists; mkrefpath builds them."""
    assert mkrefpath(D1, ["a", "b"]) == [D1, "a", "b"]
    assert mkrefpath(D1) == [D1]
    assert is_refpath([D1, "a"])
    assert not is_refpath([D1, 1])
    assert not is_refpath(["x", "a"])
    assert not is_refpath(D1)


def test_cfg_attrs_gives_attribute_access() -> None:
    """cfg_attrs exposes top-level keys as attributes."""
    a = cfg_attrs({"name": "n", "lr": 0.1})
    assert (a.name, a.lr) == ("n", 0.1)


def test_fixed_configs_give_fixed_drefs() -> None:
    """Golden vectors: these configs hash to these DRef hash parts forever."""
    assert config_hash(mkconfig({})) == GOLDEN_EMPTY
    assert config_hash(mkconfig({"name": "hello", "version": "2.10", "n": [1, 2.5, None]})) == (
        GOLDEN_HELLO
    )


GOLDEN_EMPTY = "8aa0f9d837eef07dffa4b595c66ff823"
GOLDEN_HELLO = "c8113bb6812fcc8943dce5448fa3fee1"


def test_a_config_containing_itself_is_refused_at_the_cycle() -> None:
    """A dict that holds itself is a ConfigError naming the key path that closes the cycle."""
    inner: dict[str, Any] = {}
    inner["b"] = {"c": inner}
    with pytest.raises(ConfigError) as ei:
        mkconfig({"x": 1, "a": inner})
    assert str(ei.value) == (
        "config['a']['b']['c'] contains itself (a cycle): JSON data must be a tree; "
        "copy the value instead of referring to it"
    )
    assert ei.value.key_path == ("a", "b", "c")  # type: ignore[attr-defined]


def test_a_list_containing_itself_is_refused_at_the_cycle() -> None:
    """A list that holds itself is a ConfigError naming the index that closes the cycle."""
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ConfigError) as ei:
        mkconfig({"l": loop})
    assert ei.value.key_path == ("l", 1)  # type: ignore[attr-defined]


def test_a_5000_deep_config_is_refused_with_its_depth() -> None:
    """Nesting far past the recursion limit is a ConfigError at MAX_DEPTH, not a RecursionError."""
    deep: dict[str, Any] = {}
    x = deep
    for _ in range(5000):
        x["k"] = {}
        x = x["k"]
    with pytest.raises(ConfigError) as ei:
        mkconfig(deep)
    assert ei.value.key_path == ("k",) * (MAX_DEPTH + 1)  # type: ignore[attr-defined]
    assert str(ei.value).endswith(
        f"['k'] is nested more than {MAX_DEPTH} levels deep: flatten the config "
        "(e.g. store deep data as an artifact)"
    )


def test_a_config_at_the_depth_limit_is_accepted() -> None:
    """Exactly MAX_DEPTH lists nested in the config dict are still plain JSON data."""
    v: Any = 1
    for _ in range(MAX_DEPTH):
        v = [v]
    assert config_serialize(mkconfig({"v": v})).startswith(b'{"v":[[[')


def test_an_integer_too_long_to_print_is_refused() -> None:
    """10**5000 (beyond sys.get_int_max_str_digits) is a ConfigError naming its key path."""
    with pytest.raises(ConfigError) as ei:
        mkconfig({"n": [0, 10**5000]})
    assert str(ei.value) == (
        "config['n'][1] is an integer of about 5000 digits, more than Python prints "
        "(sys.get_int_max_str_digits()): store it as a string"
    )
    assert ei.value.key_path == ("n", 1)  # type: ignore[attr-defined]


def test_a_large_printable_integer_is_accepted() -> None:
    """An integer of 700 digits (above the quick bound, below Python's limit) is kept."""
    assert config_serialize(mkconfig({"n": -(10**700)})) == b'{"n":-1' + b"0" * 700 + b"}"


def test_a_lone_surrogate_in_a_value_is_refused() -> None:
    """A string with a lone surrogate is a ConfigError naming its key path."""
    with pytest.raises(ConfigError) as ei:
        mkconfig({"s": "ok\ud800"})
    assert str(ei.value) == (
        "config['s'] has a string with the lone surrogate '\\ud800' at position 2, which is "
        "not valid Unicode text (UTF-8 cannot encode it): decode the data properly or store "
        "it as bytes in an artifact"
    )
    assert ei.value.key_path == ("s",)  # type: ignore[attr-defined]


def test_a_lone_surrogate_in_a_key_is_refused() -> None:
    """A key with a lone surrogate is a ConfigError whose key path ends with that key."""
    with pytest.raises(ConfigError) as ei:
        mkconfig({"d": {"\udfff": 1}})
    assert str(ei.value).startswith("config['d'] has a key with the lone surrogate '\\udfff'")
    assert ei.value.key_path == ("d", "\udfff")  # type: ignore[attr-defined]


@settings(deadline=None)
@given(json_dicts, surrogate_texts)
def test_surrogates_anywhere_give_a_config_error(d: dict[str, Any], s: str) -> None:
    """A lone surrogate as a value or a key anywhere is a ConfigError, never a UnicodeError."""
    for bad in ({**d, "__v": [s]}, {**d, "__k": {s: 1}}):
        with pytest.raises(ConfigError) as ei:
            mkconfig(bad)
        assert ei.value.key_path[0] in ("__v", "__k")  # type: ignore[attr-defined]


@settings(deadline=None)
@given(long_names)
def test_long_names_are_refused_with_the_limit(n: str) -> None:
    """A name over MAX_NAME_LEN characters is a ConfigError on 'name' saying the limit."""
    with pytest.raises(ConfigError) as ei:
        mkconfig({"name": n})
    assert str(ei.value) == (
        f"config['name']: name {n[:50]!r}... is {len(n)} characters long: names may have "
        f"at most {MAX_NAME_LEN} (they become file names; shorten the stage name)"
    )
    assert ei.value.key_path == ("name",)  # type: ignore[attr-defined]


def test_a_name_at_the_limit_is_a_valid_folder_name(S: StorageSettings) -> None:
    """A MAX_NAME_LEN-character name instantiates into the store (its folder fits in 255 bytes)."""
    d, _ = instantiate(mkdrv, {"name": "n" * MAX_NAME_LEN}, match_only(), _noop, S=S)
    assert len(os.path.basename(dref2path(d, S))) == 33 + MAX_NAME_LEN


def test_a_300_character_name_fails_at_instantiate_with_a_config_error(
    S: StorageSettings,
) -> None:
    """A 300-character name never reaches the file system: mkdrv raises ConfigError."""
    with pytest.raises(ConfigError) as ei:
        instantiate(mkdrv, {"name": "n" * 300}, match_only(), _noop, S=S)
    assert ei.value.key_path == ("name",)  # type: ignore[attr-defined]
    assert sorted(os.listdir(S.storage)) == [".locks", ".roots", ".temproots", "FORMAT"]


def _noop(S: StorageSettings, dref: DRef, ctx: Any, ra: Any) -> list[Any]:
    return []


def _general(d: dict[str, Any]) -> tuple[str, Any]:
    """What the general walk makes of ``d``: ("ok", (data, canonical bytes, DRefs)) or
    ("error", (message, key path))."""
    try:
        val = copy_json(d)
    except ConfigError as e:
        return "error", (str(e), e.key_path)  # type: ignore[attr-defined]
    return "ok", (val, canonical_json(val), config_deps(Config(val)))


def _fast(d: dict[str, Any]) -> tuple[str, Any]:
    """What mkconfig makes of ``d``, in the form of :func:`_general`."""
    try:
        c = mkconfig(d)
    except ConfigError as e:
        return "error", (str(e), e.key_path)  # type: ignore[attr-defined]
    return "ok", (c.val, config_serialize(c), config_deps(c))


@settings(deadline=None, max_examples=400)
@given(odd_dicts)
def test_mkconfig_agrees_with_the_general_walk(d: dict[str, Any]) -> None:
    """On any data, good or bad, mkconfig gives the general walk's copy, bytes and DRefs,
    or its very error (message and key path)."""
    assert _fast(d) == _general(d)


@settings(deadline=None, max_examples=300)
@given(json_dicts | odd_dicts)
def test_the_plain_walk_copies_exactly_or_gives_up(d: dict[str, Any]) -> None:
    """_fast_copy returns what copy_json returns (same types, new containers) or gives up."""
    heads: list[str] = []
    try:
        out = _fast_copy(d, 0, heads)
    except _NotPlainError:
        return
    assert canonical_json(out) == canonical_json(copy_json(d))
    assert sorted(set(heads) & set(config_deps(Config(out)))) == config_deps(Config(out))


@settings(deadline=None)
@given(st.dictionaries(st.text(alphabet="abc", max_size=3), ascii_values, max_size=5))
def test_the_plain_walk_takes_plain_ascii_data(d: dict[str, Any]) -> None:
    """ASCII text, small ints, finite floats, bools, None, lists and dicts: no fallback."""
    assert _fast_copy(d, 0, []) == copy_json(d)


@pytest.mark.parametrize(
    "value",
    [
        "é",
        float("nan"),
        10**600,
        -(10**600),
        (1,),
        I(1),
        F(1.0),
        StrSub("x"),
        {1: 2},
        {"é": 1},
        {StrSub("k"): 1},
    ],
)
def test_the_plain_walk_gives_up_on_what_it_does_not_handle(value: Any) -> None:
    """Non-ASCII text, NaN, integers at the quick bound, tuples, subclasses and odd keys
    go to the general walk."""
    with pytest.raises(_NotPlainError):
        _fast_copy({"v": [value]}, 0, [])


def test_the_plain_walk_gives_up_at_the_depth_limit_and_the_general_walk_decides() -> None:
    """A config MAX_DEPTH levels deep leaves the plain walk, and is still accepted."""
    v: Any = 1
    for _ in range(MAX_DEPTH):
        v = [v]
    with pytest.raises(_NotPlainError):
        _fast_copy({"v": v}, 0, [])
    assert mkconfig({"v": v}).val == {"v": v}


@settings(deadline=None)
@given(json_dicts)
def test_mutating_the_input_after_mkconfig_changes_nothing(d: dict[str, Any]) -> None:
    """Every container of a config is its own: emptying those of the input keeps the bytes."""
    c = mkconfig(d)
    before = config_serialize(c)

    def empty(v: Any) -> None:
        if type(v) is dict:
            for x in v.values():
                empty(x)
            v.clear()
        elif type(v) is list:
            for x in v:
                empty(x)
            v.clear()

    empty(d)
    assert canonical_json(c.val) == before
    assert config_serialize(c) == before


@settings(deadline=None)
@given(json_values | odd_values.filter(lambda v: _general({"v": v})[0] == "ok"))
def test_canonical_tree_gives_the_canonical_bytes(v: Any) -> None:
    """canonical_tree and canonical_json agree on every (valid) value."""
    data = copy_json(v)
    assert canonical_tree(data) == canonical_json(data)


def test_config_dref_is_mkdref_of_hash_and_name() -> None:
    """config_dref is the DRef of the config's hash and name, 'unnamed' by default."""
    for d in ({"name": "a-b_1", "x": [1]}, {}, {"name": "n", "dep": D1}):
        c = mkconfig(d)
        assert config_dref(c) == mkdref(config_hash(c), config_name(c))
    assert config_dref(mkconfig({})).endswith("-unnamed")


def test_config_dref_refuses_a_bad_name_as_config_name_does() -> None:
    """A Config built without mkconfig and a bad name: the same RefError as config_name's."""
    c = Config({"name": "bad name"})
    with pytest.raises(RefError) as e1:
        config_name(c)
    with pytest.raises(RefError) as e2:
        config_dref(c)
    assert (
        str(e2.value)
        == str(e1.value)
        == (
            "invalid name 'bad name': names may use only letters, digits, '-' and '_' "
            "(rename the stage, e.g. 'hello-2_10')"
        )
    )


def test_deps_of_a_config_built_directly_are_scanned() -> None:
    """A Config made from data (as the store reads it back) finds its DRefs on demand."""
    c = Config({"x": [D2, {"y": D1}], "t": "dref:not-one"})
    assert config_deps(c) == [D1, D2]
    assert config_deps(mkconfig({"x": [D2, {"y": D1}], "t": "dref:not-one"})) == [D1, D2]
