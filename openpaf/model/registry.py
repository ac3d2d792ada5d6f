"""Named model variants: ``create_model(name, **overrides)`` and ``list_models()``.

A variant is a small function registered with ``@register_model`` that returns a
``PafNetConfig`` (the variants live in :mod:`openpaf.model.network`). Overrides replace
config fields; ``None`` overrides are dropped so the variant's defaults still apply.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .network import PafNet, PafNetConfig

_MODELS: dict[str, Callable[[], "PafNetConfig"]] = {}


def register_model(fn: Callable[[], "PafNetConfig"]) -> Callable[[], "PafNetConfig"]:
    """Decorator: register ``fn`` (no arguments, returns a config) under ``fn.__name__``."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_MODELS)


def model_description(name: str) -> str:
    """First line of the variant's docstring."""
    fn = _lookup(name)
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


def get_config(name: str, **overrides) -> "PafNetConfig":
    """The variant's ``PafNetConfig`` with ``overrides`` applied (``None`` values ignored)."""
    config = _lookup(name)()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown PafNetConfig field(s) {unknown}; known: {sorted(fields)}")
    return dataclasses.replace(config, **overrides)


def create_model(name: str, **overrides) -> "PafNet":
    """Build the registered variant ``name`` (randomly initialised) with ``overrides``."""
    from .network import PafNet
    return PafNet(get_config(name, **overrides))


def _lookup(name: str) -> Callable[[], "PafNetConfig"]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}") from None
