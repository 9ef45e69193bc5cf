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
