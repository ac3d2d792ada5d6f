"""CMU weight import/export, checked against an independent functional CMU reference."""
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from openpaf_cli.main import main as cli
from openpaf.weights.checkpoint import CheckpointError, load_checkpoint
from openpaf.model import create_model
from openpaf.model.cmu_vgg import CmuVgg
from openpaf.weights.formats.cmu import CMU_LICENCE, cmu_key_map, cmu_to_ours, ours_to_cmu
from openpaf.weights.formats.torchvision_vgg import (load_torchvision_vgg19,
                                                     torchvision_vgg19_to_ours)

# --- the CMU COCO body model, written out from its prototxt (no openpaf code) ---------
CMU_TRUNK = [("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool",
             ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
             ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
             ("conv3_4", 256, 256), "pool",
             ("conv4_1", 256, 512), ("conv4_2", 512, 512),
             ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128)]


def cmu_branch(stage, lx):
    """[(name, cin, cout, kernel)] of one branch; L1 = 38 PAFs, L2 = 19 heatmaps."""
    n_out = 38 if lx == "L1" else 19
    if stage == 1:
        return ([(f"conv5_{i}_CPM_{lx}", 128, 128, 3) for i in (1, 2, 3)]
                + [(f"conv5_4_CPM_{lx}", 128, 512, 1), (f"conv5_5_CPM_{lx}", 512, n_out, 1)])
    return ([(f"Mconv1_stage{stage}_{lx}", 128 + 38 + 19, 128, 7)]
            + [(f"Mconv{i}_stage{stage}_{lx}", 128, 128, 7) for i in (2, 3, 4, 5)]
            + [(f"Mconv6_stage{stage}_{lx}", 128, 128, 1),
               (f"Mconv7_stage{stage}_{lx}", 128, n_out, 1)])


def cmu_layers(stages):
    layers = [(n, cin, cout, 3) for n, cin, cout in (x for x in CMU_TRUNK if x != "pool")]
    for s in range(1, stages + 1):
        layers += cmu_branch(s, "L1") + cmu_branch(s, "L2")
    return layers


def random_cmu_state_dict(stages, seed=0):
    """CMU names/shapes, He-scaled random weights so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, cin, cout, k in cmu_layers(stages):
        std = (2 / (cin * k * k)) ** 0.5
        sd[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=g) * std
        sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.01
    return sd


def cmu_reference_forward(sd, x, stages):
    """CMU's net with F.conv2d/relu/max_pool2d over CMU names -> [(L1, L2)] per stage."""
    def conv(name, h, relu=True):
        w = sd[f"{name}.weight"]
        h = F.conv2d(h, w, sd[f"{name}.bias"], padding=w.shape[-1] // 2)
        return F.relu(h) if relu else h

    def branch(layers, h):
        for name, *_ in layers[:-1]:
            h = conv(name, h)
        return conv(layers[-1][0], h, relu=False)    # last conv of a branch: no ReLU

    h = x
    for item in CMU_TRUNK:
        h = F.max_pool2d(h, 2, 2) if item == "pool" else conv(item[0], h)
    features, out, inp = h, [], h
    for s in range(1, stages + 1):
        l1, l2 = branch(cmu_branch(s, "L1"), inp), branch(cmu_branch(s, "L2"), inp)
        out.append((l1, l2))
        inp = torch.cat([l1, l2, features], 1)      # CMU: L1, L2, then features
    return out


@pytest.fixture(scope="module")
def cmu6():
    return random_cmu_state_dict(6)


def _close(actual, expected):
    scale = expected.abs().max().item()
    assert scale > 1e-3                              # the comparison is not vacuous
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * scale)


def test_import_matches_functional_reference(cmu6):
    config, state = cmu_to_ours(cmu6)
    assert config.stages == 6
    with torch.device("meta"):                       # skip the random init of 52M params
        model = CmuVgg(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    x = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1)) - 0.5
    with torch.no_grad():
        ours = model(x)
        ref = cmu_reference_forward(cmu6, x, 6)
    assert ours[-1].pafs.shape == (1, 38, 6, 8) and ours[-1].heatmaps.shape == (1, 19, 6, 8)
    for s in (0, 1, 5):
        _close(ours[s].pafs, ref[s][0])              # PAFs (L1)
        _close(ours[s].heatmaps, ref[s][1])          # heatmaps (L2)


def test_key_map_names_every_cmu_tensor(cmu6):
    assert sorted(cmu_key_map(6).values()) == sorted(cmu6)
    assert cmu_key_map(6)["backbone.conv1_1.conv.weight"] == "conv1_1.weight"
    assert cmu_key_map(6)["cpm.conv4_3.conv.bias"] == "conv4_3_CPM.bias"
    assert cmu_key_map(6)["stages.0.paf.out.weight"] == "conv5_5_CPM_L1.weight"
    assert cmu_key_map(6)["stages.5.heatmap.layers.5.conv.weight"] == "Mconv6_stage6_L2.weight"


def test_round_trip_export(cmu6):
    back = ours_to_cmu(cmu_to_ours(cmu6)[1])
    assert list(back) == list(cmu_key_map(6).values())
    assert set(back) == set(cmu6)
    for k, v in cmu6.items():
        assert torch.equal(back[k], v), k


@pytest.mark.parametrize("stages", [2, 3, 5])
def test_stages_inferred_from_keys(cmu6, stages):
    keep = {f"{layer[0]}.{p}" for layer in cmu_layers(stages) for p in ("weight", "bias")}
    config, state = cmu_to_ours({k: v for k, v in cmu6.items() if k in keep})
    assert config.stages == stages
    assert sorted(state) == sorted(create_model("cmu_vgg19", stages=stages).state_dict())


def test_wrapped_and_module_prefixed(cmu6):
    plain = cmu_to_ours(cmu6)[1]
    for wrapped in ({"state_dict": cmu6}, {f"module.{k}": v for k, v in cmu6.items()}):
        _, state = cmu_to_ours(wrapped)
        assert state.keys() == plain.keys()
        assert torch.equal(state["stages.3.paf.out.bias"], plain["stages.3.paf.out.bias"])


def test_wrong_shape_is_a_clear_error(cmu6):
    bad = dict(cmu6, **{"conv1_1.weight": torch.zeros(64, 3, 5, 5)})
    with pytest.raises(CheckpointError) as e:
        cmu_to_ours(bad)
    msg = str(e.value)
    assert "\n" not in msg and "not a CMU COCO body model" in msg
    assert "wrong shape 1 (conv1_1.weight (64, 3, 5, 5) != (64, 3, 3, 3))" in msg


def test_missing_and_unexpected_keys(cmu6):
    bad = {k: v for k, v in cmu6.items() if k != "Mconv3_stage4_L2.bias"}
    bad["conv9_9.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        cmu_to_ours(bad)
    msg = str(e.value)
    assert "missing 1 (Mconv3_stage4_L2.bias)" in msg
    assert "unexpected 1 (conv9_9.weight)" in msg
    many = {k: v for k, v in cmu6.items() if not k.startswith("Mconv")}
    many["Mconv1_stage6_L1.weight"] = cmu6["Mconv1_stage6_L1.weight"]
    with pytest.raises(CheckpointError, match=r"missing 139 \(.*, \.\.\. \+136 more\)"):
        cmu_to_ours(many)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        cmu_to_ours([1, 2])


def test_export_refuses_batch_norm_models():
    with pytest.raises(CheckpointError, match="cannot export to CMU layout"):
        ours_to_cmu(create_model("small").state_dict())


def test_cli_import_info_export(tmp_path):
    src = tmp_path / "body_pose_model.pth"
    cmu2 = random_cmu_state_dict(2, seed=3)
    torch.save(cmu2, src)
    dst = tmp_path / "cmu_coco.pt"
    runner = CliRunner()
    res = runner.invoke(cli, ["weights", "import", str(src), "-o", str(dst)])
    assert res.exit_code == 0, res.output
    loaded = load_checkpoint(dst)
    assert loaded.config.stages == 2
    assert loaded.manifest["licence"] == CMU_LICENCE
    assert loaded.manifest["source"].endswith("body_pose_model.pth")
    assert loaded.normalisation.to_dict() == {"channel_order": "BGR", "scale": 1 / 256,
                                              "offset": -0.5}
    x = torch.rand(1, 3, 32, 40) - 0.5
    _close(loaded.model.predict(x).pafs, cmu_reference_forward(cmu2, x, 2)[-1][0])

    res = runner.invoke(cli, ["weights", "info", str(dst)])
    assert res.exit_code == 0, res.output
    assert "parameters: 17,172,146" in res.output and "non-commercial" in res.output
    assert "cmu_vgg (stages 2," in res.output

    out = tmp_path / "exported.pth"
    res = runner.invoke(cli, ["weights", "export", str(dst), "-o", str(out), "--format", "cmu"])
    assert res.exit_code == 0, res.output
    exported = torch.load(out, weights_only=True)
    assert exported.keys() == cmu2.keys()
    assert all(torch.equal(exported[k], v) for k, v in cmu2.items())


def test_cli_import_half_and_errors(tmp_path):
    src = tmp_path / "w.pth"
    torch.save({"state_dict": random_cmu_state_dict(2, seed=4)}, src)
    runner = CliRunner()
    res = runner.invoke(cli, ["weights", "import", str(src), "-o", str(tmp_path / "h.pt"),
                              "--half"])
    assert res.exit_code == 0, res.output
    raw = torch.load(tmp_path / "h.pt", weights_only=True)
    assert raw["state_dict"]["backbone.conv1_1.conv.weight"].dtype == torch.float16

    for args in (["import", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "x.pt")],
                 ["import", str(tmp_path / "h.pt"), "-o", str(tmp_path / "x.pt")],
                 ["export", str(src), "-o", str(tmp_path / "x.pth")]):
        res = runner.invoke(cli, ["weights"] + args)
        assert res.exit_code == 1, (args, res.output)
        assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.pth").exists()
    # info reads the foreign file by content, converted in memory
    res = runner.invoke(cli, ["weights", "info", str(src)])
    assert res.exit_code == 0 and "cmu_vgg (stages 2," in res.output, res.output


# --- torchvision VGG19 -> our backbone -------------------------------------------------
TV_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
            512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def torchvision_like_state_dict(bn, seed=0):
    """Keys/shapes of torchvision's vgg19(_bn) ``features`` (+ a classifier to ignore)."""
    g = torch.Generator().manual_seed(seed)
    sd, i, cin = {}, 0, 3
    for v in TV_VGG19:
        if v == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * 0.1
        sd[f"features.{i}.bias"] = torch.randn(v, generator=g)
        if bn:
            sd[f"features.{i + 1}.weight"] = torch.rand(v, generator=g) + 0.5
            sd[f"features.{i + 1}.bias"] = torch.randn(v, generator=g)
            sd[f"features.{i + 1}.running_mean"] = torch.randn(v, generator=g)
            sd[f"features.{i + 1}.running_var"] = torch.rand(v, generator=g) + 0.5
        i, cin = i + (3 if bn else 2), v
    sd["classifier.0.weight"] = torch.zeros(4, 25088)
    return sd


def test_torchvision_vgg19_mapping():
    tv = torchvision_like_state_dict(bn=False)
    ours = torchvision_vgg19_to_ours(tv)
    for name, idx in (("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5), ("conv3_4", 16),
                      ("conv4_1", 19), ("conv4_2", 21)):
        assert torch.equal(ours[f"backbone.{name}.conv.weight"], tv[f"features.{idx}.weight"])
        assert torch.equal(ours[f"backbone.{name}.conv.bias"], tv[f"features.{idx}.bias"])
    model = create_model("cmu_vgg19", stages=1)
    assert set(ours) == {k for k in model.state_dict() if k.startswith("backbone.")}
    load_torchvision_vgg19(model, tv)
    assert torch.equal(model.backbone.conv4_2.conv.weight, tv["features.21.weight"])
    with pytest.raises(CheckpointError, match="missing 2 .features.21.weight"):
        torchvision_vgg19_to_ours({k: v for k, v in tv.items()
                                   if not k.startswith("features.21.")})


def test_torchvision_vgg19_bn_bias_is_folded():
    tv = torchvision_like_state_dict(bn=True)
    before = {k: v.clone() for k, v in tv.items()}
    model = create_model("small", width_mult=1.0).eval()
    load_torchvision_vgg19(model, tv)
    x = torch.randn(1, 64, 12, 12)
    # conv2_1 is features.7 (conv) + features.8 (bn) in vgg19_bn
    ref = F.batch_norm(F.conv2d(x, tv["features.7.weight"], tv["features.7.bias"], padding=1),
                       tv["features.8.running_mean"], tv["features.8.running_var"],
                       tv["features.8.weight"], tv["features.8.bias"], eps=1e-5)
    with torch.no_grad():
        _close(model.backbone.conv2_1(x), F.relu(ref))
    assert all(torch.equal(before[k], v) for k, v in tv.items())    # input not modified
