"""Network definition: ``PafNet`` + ``PafNetConfig``, named variants and FLOP counting.

    >>> from openpaf.model import create_model, list_models, count_flops
    >>> model = create_model("cmu_vgg19")            # CMU's 6-stage COCO model
    >>> pafs, heatmaps = model(x)[-1]                # (B,38,H/8,W/8), (B,19,H/8,W/8)
"""
from .network import PafNet, PafNetConfig, count_flops, count_parameters
from .registry import create_model, get_config, list_models, model_description, register_model

__all__ = ["PafNet", "PafNetConfig", "count_flops", "count_parameters", "create_model",
           "get_config", "list_models", "model_description", "register_model"]
