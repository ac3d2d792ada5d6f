"""The lightweight OpenPose family: keys, shapes, activations, BatchNorm and folding."""
import pytest
import torch
from torch import nn

from openpaf.model import ConvAct, build_model, create_model, fold_batchnorm, get_config
from openpaf.model.lightweight import LightweightConfig, LightweightPose
from openpaf.structures import Maps


def convs(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, ConvAct)}


def test_state_dict_keys_are_pinned():
    with torch.device("meta"):
        model = create_model("lightweight_mobilenet_v1")
    keys = list(model.state_dict())
    assert len(keys) == 2 * 58 and all(k.endswith((".conv.weight", ".conv.bias")) for k in keys)
    assert keys[:4] == ["backbone.conv1.conv.weight", "backbone.conv1.conv.bias",
                        "backbone.conv2_1.dw.conv.weight", "backbone.conv2_1.dw.conv.bias"]
    names = list(convs(model))
    assert names[22:26] == ["backbone.conv5_5.pw", "cpm.align", "cpm.reduce", "cpm.trunk.0.dw"]
    assert names[-6:] == ["refinement.0.trunk.4.conv1", "refinement.0.trunk.4.conv2",
                          "refinement.0.pafs.hidden", "refinement.0.pafs.out",
                          "refinement.0.heatmaps.hidden", "refinement.0.heatmaps.out"]
    c = convs(model)
    assert c["backbone.conv5_1.dw"].conv.dilation == (2, 2)
    assert c["backbone.conv5_1.dw"].conv.groups == 512
    assert c["refinement.0.trunk.0.initial"].conv.in_channels == 38 + 19 + 128


def test_activations_are_the_irs():
    with torch.device("meta"):
        model = create_model("lightweight_mobilenet_v1")
    for name, m in convs(model).items():
        want = (None if name.endswith(".out") else
                nn.ELU if name.startswith("cpm.") and name != "cpm.conv" else nn.ReLU)
        assert (type(m.act) if want else m.act) == want, name


@pytest.mark.parametrize("stages", [0, 2])
def test_forward_gives_maps_per_stage_heatmaps_first(stages, one_thread):
    model = create_model("lightweight_tiny", refinement_stages=stages).eval()
    out = model(torch.randn(2, 3, 64, 40))
    assert len(out) == 1 + stages and all(isinstance(m, Maps) for m in out)
    assert out[-1].heatmaps.shape == (2, 19, 8, 5) and out[-1].pafs.shape == (2, 38, 8, 5)
    assert torch.equal(model.predict(torch.zeros(1, 3, 16, 16)).pafs,
                       model(torch.zeros(1, 3, 16, 16))[-1].pafs)


def test_norm_where_osokin_trains_with_it_and_folds_to_the_plain_layout(one_thread):
    model = create_model("lightweight_tiny", norm=True)
    with_bn = {n for n, m in convs(model).items() if m.bn is not None}
    assert with_bn == {n for n in convs(model)
                       if n.startswith("backbone.") or n.endswith((".conv1", ".conv2"))}
    with torch.no_grad():                     # non-trivial running statistics
        model.train()(torch.randn(4, 3, 32, 32))
    model.eval()
    folded = fold_batchnorm(model)
    plain = LightweightPose(LightweightConfig(**{**model.config.to_dict(), "norm": False}))
    plain.load_state_dict(folded.state_dict())   # same keys and shapes as norm=False
    x = torch.randn(1, 3, 32, 24)
    torch.testing.assert_close(plain(x)[-1].pafs, model(x)[-1].pafs, atol=1e-4, rtol=1e-4)


def test_config_round_trip_and_checks():
    config = get_config("lightweight_mobilenet_v1_3ref")
    assert config.refinement_stages == 3 and not config.norm
    with torch.device("meta"):
        model = build_model("lightweight", config.to_dict())
    assert model.config == config and len(model.refinement) == 3
    with pytest.raises(ValueError, match="unknown"):
        LightweightConfig.from_dict({"stages": 2})
    with pytest.raises(ValueError, match="channels"):
        LightweightConfig(channels=0)


def test_more_refinement_stages_grow_from_a_checkpoint(tmp_path):
    """The recipe's last run: 3 refinement stages start from a 1-stage checkpoint."""
    from openpaf.structures import InputNorm
    from openpaf.train import TrainConfig
    from openpaf.train.init import build_model as build_train_model
    from openpaf.weights.checkpoint import save_checkpoint
    torch.manual_seed(0)
    one = create_model("lightweight_tiny")
    path = save_checkpoint(tmp_path / "one.pt", one, normalisation=InputNorm(), manifest={})
    grown, _ = build_train_model(TrainConfig(model="lightweight_tiny",
                                             model_overrides={"refinement_stages": 3},
                                             init=f"checkpoint:{path}"))
    assert len(grown.refinement) == 3
    mine, theirs = grown.state_dict(), one.state_dict()
    for k, v in theirs.items():                       # every tensor of the source copied
        assert torch.equal(mine[k], v), k
    assert any(k.startswith("refinement.2.") for k in mine)
    same, _ = build_train_model(TrainConfig(model="tiny", init=f"checkpoint:{path}"))
    assert same.arch == "lightweight" and len(same.refinement) == 1   # other family: as saved
