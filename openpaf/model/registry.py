"""The model registry: variant name -> (family, config, pretrained cfg).

A *family* is a ``PafModel`` subclass registered with ``@register_family``; its
``config_cls.arch`` names it in checkpoints. A *variant* is a small function,
registered with ``@register_model(PretrainedCfg(...))`` at the bottom of its family's
file, that returns the family's config. ``create_model(name, **overrides)`` builds it;
``build_model(arch, config_dict)`` rebuilds a checkpoint's network.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..structures import InputNorm

if TYPE_CHECKING:  # pragma: no cover
    from .base import FamilyConfig, PafModel


@dataclass(frozen=True)
class PretrainedCfg:
    """Inference defaults that travel with a variant (and with its checkpoints).

    normalisation: how the network expects its input.
    height: default network input height in pixels (multiple of the stride).
    pad_value: uint8 value used to pad the resized image to a multiple of the stride.
    flip: whether flip test-time augmentation is on by default.
    accurate_scales: the input scales of the accuracy mode (``Predictor(accurate=True)``,
        ``--accurate``: flip plus these scales), chosen on coco/train per model.
    """

    normalisation: InputNorm = InputNorm()
    height: int = 368
    pad_value: int = 128
    flip: bool = False
    accurate_scales: tuple[float, ...] = (1.0,)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["normalisation"] = self.normalisation.to_dict()
        d["accurate_scales"] = list(self.accurate_scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainedCfg":
        d = dict(d)
        d["normalisation"] = InputNorm(**d.get("normalisation", {}))
        d["accurate_scales"] = tuple(d.get("accurate_scales", (1.0,)))
        return cls(**d)


@dataclass(frozen=True)
class Variant:
    name: str
    make_config: Callable[[], "FamilyConfig"]
    pretrained: PretrainedCfg
    description: str


FAMILIES: dict[str, type["PafModel"]] = {}
_MODELS: dict[str, Variant] = {}


def register_family(model_cls: type["PafModel"]) -> type["PafModel"]:
    """Class decorator: make ``model_cls`` buildable by its ``config_cls.arch``."""
    arch = model_cls.config_cls.arch
    if not arch or arch in FAMILIES:
        raise ValueError(f"family arch {arch!r} is empty or already registered")
    FAMILIES[arch] = model_cls
    return model_cls


def register_model(pretrained: PretrainedCfg = PretrainedCfg()):
    """Decorator factory: register a variant function (no arguments, returns a config)."""
    def wrap(fn: Callable[[], "FamilyConfig"]):
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _MODELS[fn.__name__] = Variant(fn.__name__, fn, pretrained, doc[0] if doc else "")
        return fn
    return wrap


def list_models() -> list[str]:
    """Registered variant names, sorted."""
    return sorted(_MODELS)


def model_description(name: str) -> str:
    """First line of the variant's docstring."""
    return _lookup(name).description


def get_pretrained_cfg(name: str) -> PretrainedCfg:
    """The variant's inference defaults."""
    return _lookup(name).pretrained


def get_config(name: str, **overrides) -> "FamilyConfig":
    """The variant's config with ``overrides`` applied (``None`` values ignored)."""
    config = _lookup(name).make_config()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown {type(config).__name__} field(s) {unknown}; "
                         f"known: {sorted(fields)}")
    return dataclasses.replace(config, **overrides)


def create_model(name: str, spec=None, **overrides) -> "PafModel":
    """Build the registered variant ``name`` (randomly initialised) with ``overrides``;
    ``spec`` (a ``KeypointSpec``, default COCO-18) sizes the heads and is kept as
    ``model.spec``."""
    if spec is not None:
        overrides.update(num_heatmaps=spec.num_heatmaps, num_pafs=spec.num_pafs)
    config = get_config(name, **overrides)
    model = FAMILIES[config.arch](config)
    if spec is not None:
        model.spec = spec
    return model


def build_model(arch: str, config: dict) -> "PafModel":
    """The network of family ``arch`` from a config dict (as checkpoints store it)."""
    if arch not in FAMILIES:
        raise ValueError(f"unknown architecture {arch!r}; this openpaf knows "
                         f"{sorted(FAMILIES)}")
    cls = FAMILIES[arch]
    return cls(cls.config_cls.from_dict(dict(config)))


def _lookup(name: str) -> Variant:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list_models()}") from None
