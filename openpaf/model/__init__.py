"""Network families, their registered variants, and shared tools.

    >>> from openpaf.model import create_model, list_models, count_flops
    >>> model = create_model("cmu_vgg19")            # CMU's 6-stage COCO model
    >>> maps = model(x)[-1]                          # Maps(heatmaps, pafs) of the last stage
    >>> maps.heatmaps.shape, maps.pafs.shape          # (B,19,H/8,W/8), (B,38,H/8,W/8)

A family is one file here plus its ``@register_family`` class; its variants are
registered at the bottom of that file. Importing a family file registers it.
"""
from .base import FamilyConfig, PafModel, head_sizes
from .layers import ConvAct, count_flops, count_parameters, fold_batchnorm
from .registry import (FAMILIES, PretrainedCfg, build_model, create_model, get_config,
                       get_pretrained_cfg, list_models, model_description, register_family,
                       register_model)

# One line per family (registers it and its variants).
from . import cmu_vgg, lightweight  # noqa: E402,F401
from . import tfpose_mobilenet_v2  # noqa: E402,F401

__all__ = ["FAMILIES", "ConvAct", "FamilyConfig", "PafModel", "head_sizes", "PretrainedCfg",
           "build_model", "count_flops", "count_parameters", "create_model",
           "fold_batchnorm", "get_config", "get_pretrained_cfg", "list_models",
           "model_description", "register_family", "register_model"]
