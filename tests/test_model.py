"""CmuVgg: pinned state-dict names, shapes/stride, registry, FLOP count."""
import hashlib

import pytest
import torch
from torch import nn

from openpaf import skeleton
from openpaf.model import count_flops, count_parameters, create_model, get_config, list_models
from openpaf.model.cmu_vgg import CmuVgg, CmuVggConfig


def _meta(name, **overrides):
    with torch.device("meta"):
        return create_model(name, **overrides)


def _expected_cmu_keys(stages=6):
    """The state-dict API of the CMU-architecture model, spelled out."""
    convs = [f"backbone.{n}" for n in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                       "conv3_2", "conv3_3", "conv3_4", "conv4_1", "conv4_2")]
    convs += ["cpm.conv4_3", "cpm.conv4_4"]
    keys = [f"{c}.conv.{p}" for c in convs for p in ("weight", "bias")]
    for s in range(stages):
        for branch in ("paf", "heatmap"):
            n = 4 if s == 0 else 6
            keys += [f"stages.{s}.{branch}.layers.{i}.conv.{p}"
                     for i in range(n) for p in ("weight", "bias")]
            keys += [f"stages.{s}.{branch}.out.{p}" for p in ("weight", "bias")]
    return keys


def test_cmu_vgg19_state_dict_keys_are_pinned():
    keys = list(_meta("cmu_vgg19").state_dict())
    assert len(keys) == 184
    assert sorted(keys) == sorted(_expected_cmu_keys())
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()
    assert digest == "87f4bb9de1502374205b8a7ae84fed24e07e6f5556d769fe86b71da3df28f1fb"
    sd = _meta("cmu_vgg19").state_dict()
    assert sd["backbone.conv1_1.conv.weight"].shape == (64, 3, 3, 3)
    assert sd["backbone.conv4_2.conv.weight"].shape == (512, 512, 3, 3)
    assert sd["cpm.conv4_4.conv.weight"].shape == (128, 256, 3, 3)
    assert sd["stages.0.paf.out.weight"].shape == (38, 512, 1, 1)
    assert sd["stages.0.heatmap.out.weight"].shape == (19, 512, 1, 1)
    assert sd["stages.1.paf.layers.0.conv.weight"].shape == (128, 185, 7, 7)
    assert sd["stages.5.heatmap.out.weight"].shape == (19, 128, 1, 1)


def test_batch_norm_keys():
    keys = set(_meta("small").state_dict())
    assert "backbone.conv1_1.bn.running_var" in keys
    assert "backbone.conv1_1.conv.bias" not in keys           # BN convs have no bias
    assert "stages.0.paf.out.bias" in keys                     # output convs: no BN
    assert "stages.0.paf.out.running_mean" not in keys


def test_channels_come_from_the_skeleton():
    cfg = CmuVggConfig()
    assert (cfg.num_heatmaps, cfg.num_pafs) == (skeleton.NUM_HEATMAPS, skeleton.NUM_PAFS)
    assert cfg.refine_in_channels == 38 + 19 + 128


@pytest.mark.parametrize("h,w", [(64, 64), (48, 80), (72, 40), (50, 67), (37, 41)])
def test_forward_shapes_and_stride(h, w):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    assert model.stride == 8
    out = model(torch.randn(2, 3, h, w))
    assert len(out) == model.config.stages == 2
    for heatmaps, pafs in out:
        # pools round down (as torchvision / pytorch-openpose): maps are floor(H/8)
        assert pafs.shape == (2, 38, h // 8, w // 8)
        assert heatmaps.shape == (2, 19, h // 8, w // 8)
        assert pafs.dtype == heatmaps.dtype == torch.float32
        assert torch.isfinite(pafs).all() and torch.isfinite(heatmaps).all()


def test_predict_is_last_stage_in_heatmap_paf_order():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    x = torch.randn(1, 3, 32, 48)
    heatmaps, pafs = model(x)[-1]
    h2, p2 = model.predict(x)
    assert not h2.requires_grad
    torch.testing.assert_close(h2, heatmaps)
    torch.testing.assert_close(p2, pafs)


def test_stage_input_is_pafs_heatmaps_features():
    """Stage 2 must see cat([pafs, heatmaps, features]) (CMU's order)."""
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    seen = {}
    model.stages[1].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    x = torch.randn(1, 3, 32, 32)
    (heatmaps, pafs), _ = model(x)
    features = model.cpm(model.backbone(x))
    torch.testing.assert_close(seen["x"], torch.cat([pafs, heatmaps, features], 1))


def test_registry():
    assert {"cmu_vgg19", "vgg19_3stage", "small", "tiny"} <= set(list_models())
    assert get_config("vgg19_3stage").stages == 3
    assert get_config("small").batch_norm
    assert get_config("tiny", stages=3).stages == 3
    assert get_config("tiny", stages=None).stages == 2            # None keeps the default
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet9000")
    with pytest.raises(ValueError, match="unknown CmuVggConfig field"):
        get_config("tiny", nonsense=1)


def test_parameter_counts():
    assert count_parameters(_meta("cmu_vgg19")) == 52_311_446   # CMU's COCO model
    assert count_parameters(_meta("vgg19_3stage")) == 25_956_971
    assert 1_000 < count_parameters(create_model("tiny")) < 100_000


def test_config_dict_round_trip():
    cfg = get_config("small")
    d = cfg.to_dict()
    assert d["vgg_widths"] == [64, 128, 256, 512]
    assert CmuVggConfig.from_dict(d) == cfg
    with pytest.raises(ValueError):
        CmuVggConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError):
        CmuVggConfig(refine_kernel=4)


def _hooked_flops(model: nn.Module, h: int, w: int) -> float:
    """2 x multiply-adds of every Conv2d, measured on a meta-device forward."""
    total = []

    def hook(m, args, out):
        k = m.kernel_size[0] * m.kernel_size[1]
        total.append(2.0 * out.numel() * m.in_channels // m.groups * k)

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    model(torch.empty(1, 3, h, w, device="meta"))
    return sum(total)


def test_cmu_flops_at_368():
    gflop = count_flops(_meta("cmu_vgg19"), 368, 368) / 1e9
    assert gflop == pytest.approx(272, rel=0.05)
    assert count_flops(_meta("vgg19_3stage"), 368, 368) < 0.7 * gflop * 1e9


@pytest.mark.parametrize("name", ["cmu_vgg19", "small", "tiny"])
@pytest.mark.parametrize("h,w", [(368, 368), (100, 60)])
def test_analytic_flops_match_a_measured_forward(name, h, w):
    model = _meta(name)
    assert count_flops(model, h, w) == pytest.approx(_hooked_flops(model, h, w), rel=1e-9)


def test_pafnet_default_is_cmu():
    assert CmuVggConfig() == get_config("cmu_vgg19")
    assert isinstance(_meta("cmu_vgg19"), CmuVgg)


@pytest.mark.parametrize("name", ["tiny", "lightweight_tiny", "tfpose_mobilenet_v2_small"])
def test_every_family_returns_one_maps_per_stage(name):
    """The one output type: ``Maps(heatmaps, pafs)`` per stage, ``num_stages`` of them."""
    from openpaf.structures import Maps
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 48))
    assert len(out) == model.num_stages >= 2
    for maps in out:
        assert isinstance(maps, Maps)
        assert maps.heatmaps.shape == (1, 19, 8, 6) and maps.pafs.shape == (1, 38, 8, 6)
    with torch.no_grad():
        torch.testing.assert_close(model.predict(torch.zeros(1, 3, 64, 48)).pafs,
                                   model(torch.zeros(1, 3, 64, 48))[-1].pafs)
