"""Tests of config.py: validation, canonical JSON and hashing, deps, promises, self-refs."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylightnix.config import (
    canonical_json,
    cfg_attrs,
    check_json,
    config_deps,
    config_dict,
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
from pylightnix.errors import ConfigError
from pylightnix.types import DRef
from tests.strategies import drefs, json_dicts, json_values, shuffled

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
