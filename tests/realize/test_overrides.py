"""Overrides: stage arguments checked up front; config keys set by stage name."""

from __future__ import annotations

import os

import pytest

from pylightnix import (
    DRef,
    OptionError,
    Registry,
    StorageSettings,
    autostage,
    build_wrapper,
    instantiate,
    match_latest,
    mkdrv,
    selfref,
)
from pylightnix.config import config_dict
from pylightnix.realize.overrides import check_stage_args, config_overrides, parse_override


@autostage
def data(n=3, opt={"scale": 1.0}, out=[selfref, "d.txt"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.write(str(n))


@autostage
def model(d=data, lr=0.1, out=[selfref, "m.txt"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.write(str(lr))


def plain(lr: float = 0.1, tag: str = "x", r: Registry | None = None) -> DRef:
    return mkdrv({"name": "plain", "lr": lr, "tag": tag}, match_latest(), build_wrapper(print), r)


def test_check_stage_args() -> None:
    """Known parameters of the right kind pass; others are refused with the reason."""
    check_stage_args(model, {"lr": 1}, who="m")
    check_stage_args(plain, {"lr": 0.5, "tag": "y"}, who="p")
    with pytest.raises(OptionError) as e:
        check_stage_args(model, {"d": 1}, who="m")
    assert str(e.value).startswith("parameter 'd' of stage m is a dependency (a stage)")
    with pytest.raises(OptionError) as e:
        check_stage_args(plain, {"tag": 3}, who="p")
    assert str(e.value) == (
        "--arg tag=3: parameter 'tag' of stage p takes a string (default \"x\"), got a number"
    )
    with pytest.raises(OptionError) as e:
        check_stage_args(plain, {"r": 3}, who="p")
    assert str(e.value) == "stage p has no parameter 'r' (its parameters: lr, tag)"


def test_nested_key_of_a_nested_stage(S: StorageSettings) -> None:
    """data.opt.scale sets a nested key of the dependency; its user gets a new DRef too."""
    plain_model, _ = instantiate(model, S=S)
    with config_overrides([parse_override("data.opt.scale=2")]) as applied:
        m, clo = instantiate(model, S=S)
    assert applied == {"data.opt.scale=2": {"data"}}
    assert m != plain_model
    d = clo.derivations[0]
    assert config_dict(d.config)["opt"] == {"scale": 2}


def test_probe_registry_writes_nothing(S: StorageSettings) -> None:
    """A registry with write=False registers derivations without storing them."""
    r = Registry(S)
    r.write = False
    with config_overrides([parse_override("n=5")]):
        instantiate(model, r=r)
    assert [n for n in os.listdir(S.storage) if not n.startswith(".") and n != "FORMAT"] == []


def test_bad_override_text() -> None:
    """Text without '=' is refused."""
    with pytest.raises(OptionError) as e:
        parse_override("data.n")
    assert str(e.value) == "--set 'data.n' is not STAGE.KEY=VALUE (or KEY=VALUE)"
