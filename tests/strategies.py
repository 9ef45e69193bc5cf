"""Shared hypothesis strategies: names, hash parts, refs, plain JSON configs, DAG shapes."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st

from pylightnix.types import DRef, HashPart, Name, RRef

NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

names = st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=24).map(Name)
hashparts = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(HashPart)
drefs = st.builds(lambda h, n: DRef(f"dref:{h}-{n}"), hashparts, names)
rrefs = st.builds(lambda r, h, n: RRef(f"rref:{r}-{h}-{n}"), hashparts, hashparts, names)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Top-level configs: "name" is left out because it must be a valid object name.
json_dicts = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "name"), json_values, max_size=6
)


# Strings holding at least one lone surrogate (not encodable as UTF-8).
surrogate_texts = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=4),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.text(max_size=4),
)
# Object names just over the length limit, and too long to be file names.
long_names = st.text(alphabet=NAME_ALPHABET, min_size=129, max_size=400).map(Name)


def shuffled(value: Any, rnd: random.Random) -> Any:
    """A deep copy of JSON data whose dicts are rebuilt in a random key order."""
    if type(value) is dict:
        keys = list(value)
        rnd.shuffle(keys)
        return {k: shuffled(value[k], rnd) for k in keys}
    if type(value) is list:
        return [shuffled(v, rnd) for v in value]
    return value


@st.composite
def dags(draw: st.DrawFn, max_stages: int = 12) -> list[dict[str, Any]]:
    """Random build plans: per stage, its deps (earlier stages), nouts, matcher kind and n."""
    n = draw(st.integers(min_value=1, max_value=max_stages))
    out: list[dict[str, Any]] = []
    for i in range(n):
        deps = (
            sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)))
            if i
            else []
        )
        nouts = draw(st.integers(min_value=1, max_value=3))
        kind = draw(st.sampled_from(["latest", "all", "some", "best", "only"]))
        if kind == "only":
            nouts = 1
        k = draw(st.integers(min_value=1, max_value=nouts))
        out.append({"deps": deps, "nouts": nouts, "matcher": kind, "n": k})
    return out


file_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
tree_leaves = (
    st.binary(max_size=64).map(lambda b: ("f", b))
    | st.binary(max_size=64).map(lambda b: ("x", b))
    | file_names.map(lambda t: ("l", t))
)
trees = st.recursive(
    st.dictionaries(file_names, tree_leaves, max_size=4),
    lambda children: st.dictionaries(file_names, tree_leaves | children, max_size=4),
    max_leaves=12,
)
"""Random file trees: name -> ("f"|"x", bytes) file, ("l", target) symlink, or a sub-tree dict."""


class StrSub(str):
    """A str subclass (configs refuse it: it could encode unlike its value)."""


class IntSub(int):
    """An int subclass (a numpy-like integer; configs refuse it)."""


# Every kind of value a config walk refuses or treats apart from the usual ones:
# NaN and infinities, tuples, bytes, sets, classes, subclasses of str and int,
# integers around the quick size bound (10**600) and past the printable limit,
# lone surrogates and other non-ASCII text.
odd_scalars = (
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            -float("inf"),
            (1, 2),
            b"x",
            bytearray(b"y"),
            {1},
            frozenset(),
            object,
        ]
    )
    | st.integers(min_value=10**600 - 2, max_value=10**600 + 2)
    | st.integers(min_value=-(10**600) - 2, max_value=-(10**600) + 2)
    | st.integers(min_value=4400, max_value=4500).map(lambda e: -(10**e))
    | surrogate_texts
    | st.text(alphabet='é€\u2028\x00"\\', min_size=1, max_size=3)
    | st.builds(StrSub, st.text(max_size=3))
    | st.builds(IntSub, st.integers())
    | drefs
)
odd_keys = st.text(max_size=6) | st.integers() | st.booleans() | st.none() | surrogate_texts
odd_values = st.recursive(
    # One leaf in five is odd: most examples hold one or two odd values, or none.
    st.integers(min_value=0, max_value=4).flatmap(lambda i: json_scalars if i else odd_scalars),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(odd_keys, children, max_size=4)
    ),
    max_leaves=12,
)
"""JSON data with, sometimes, something a config refuses somewhere inside."""
odd_dicts = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "name"), odd_values, max_size=5
)
ascii_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(max_codepoint=127), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(max_codepoint=127), max_size=4), children, max_size=4
        )
    ),
    max_leaves=16,
)
"""JSON data of ASCII text only (what configs usually hold)."""
