"""Training: overfit real images until people are found, exact resume, CLI, data mixing."""
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.weights.checkpoint import (default_weights_path, load_checkpoint, read_checkpoint,
                                       save_checkpoint)
from openpaf.data.augment import AugmentParams
from openpaf.data.coco import LSPET_LICENCE, DatasetSpec, MixSampler
from openpaf.evaluate import evaluate
from openpaf.predict import Predictor
from openpaf.model import create_model
from openpaf.structures import InputNorm, Maps
from openpaf.train import TrainConfig, get_recipe, paf_loss, train

from conftest import COCO_TRAIN, require
from helpers import CLI
from test_data import synthetic_people

pytestmark = pytest.mark.usefixtures("one_thread")

# Single-person COCO train images with a large person (0.73-0.86 of the image height).
OVERFIT_IMAGES = ("000000000474.jpg", "000000000036.jpg", "000000000962.jpg")


def _quiet(_):
    pass


def _three_images(tmp_path):
    """A COCO file of the 3 ``OVERFIT_IMAGES`` of coco/train, and the image folder."""
    ann = require(COCO_TRAIN)
    doc = json.loads(ann.read_text())
    ids = {i["id"] for i in doc["images"] if i["file_name"] in OVERFIT_IMAGES}
    sub = {**doc, "images": [i for i in doc["images"] if i["id"] in ids],
           "annotations": [a for a in doc["annotations"] if a["image_id"] in ids]}
    assert len(sub["images"]) == 3
    sub_file = tmp_path / "three.json"
    sub_file.write_text(json.dumps(sub))
    return sub_file, ann.parent / "train"


def test_overfit_real_images_then_find_the_people(tmp_path):
    """``tiny`` + BatchNorm, 300 Adam steps on 3 real images at 160 px (~20 s): the loss
    falls below 0.25x (seen 0.11-0.13 with seeds 0-2) and COCO AP on the same images
    exceeds 0.05, AP50 0.3 (seen AP 0.13-0.67, AP50 0.66-1.0). Without BatchNorm ``tiny``
    still has near-zero heatmaps after 500 steps."""
    sub_file, images = _three_images(tmp_path)
    augment = AugmentParams(input_size=160, target_size=0.8, scale_range=(0.85, 1.15),
                            rotate=0, centre_jitter=8, flip=0, brightness=0, contrast=0,
                            saturation=0)
    config = TrainConfig(model="tiny", model_overrides={"batch_norm": True}, input_size=160,
                         batch_size=3, optimizer="adam", lr=3e-3, schedule="cosine",
                         warmup_steps=10, max_steps=300, workers=0, seed=0, augment=augment,
                         log_every=50, checkpoint_every=0, val_height=160)
    result = train(config, [DatasetSpec(str(sub_file), str(images))], tmp_path / "run",
                   val=f"{sub_file}:{images}", progress=False, log=_quiet)
    losses = np.array([loss for _, loss in result.losses])
    assert len(losses) == 300
    assert losses[-5:].mean() < 0.25 * losses[:5].mean(), (losses[:5], losses[-5:])
    model = load_checkpoint(result.best).model
    report = evaluate(sub_file, images, predictor=Predictor(model, height=160, device="cpu"),
                      progress=False)
    assert report["AP"] > 0.05 and report["AP50"] > 0.3, report
    # the run's own validation (at the end) saw the same AP and kept that model as best.pt
    assert result.val == [(300, pytest.approx(report["AP"]))]
    assert read_checkpoint(result.best)["manifest"]["best_val_ap"] == round(report["AP"], 4)
    assert (tmp_path / "run" / "log.csv").read_text().splitlines()[-1].endswith(
        f"{report['AP']:.4f}")


def _state(path):
    ckpt = read_checkpoint(path)
    return ckpt["state_dict"], ckpt["extra"]["train_state"]


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_interrupted_and_resumed_run_is_bit_identical(tmp_path):
    """6 steps straight vs 3 steps, stop, resume (fresh process state, via the CLI, with a
    worker process) to 6: identical weights, BN stats, optimizer and scheduler states."""
    base = synthetic_people(tmp_path, n_images=3, size=96)
    spec = DatasetSpec(base.annotations, base.images, licence=LSPET_LICENCE)
    config = TrainConfig(model="tiny", model_overrides={"batch_norm": True}, input_size=64,
                         batch_size=2, optimizer="adam", lr=1e-3, schedule="cosine",
                         warmup_steps=2, max_steps=6, workers=0, seed=5, log_every=1,
                         checkpoint_every=2, augment=AugmentParams(input_size=64))
    full = train(config, [spec], tmp_path / "full", progress=False, log=_quiet)
    part = train(config, [spec], tmp_path / "part", progress=False, log=_quiet, halt_after=3)
    assert part.halted and part.steps == 3 and full.steps == 6
    assert _state(part.last)[1]["step"] == 3
    res = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "part"), "--workers",
                                    "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output
    (w_full, s_full), (w_part, s_part) = _state(full.last), _state(tmp_path / "part/last.pt")
    assert s_part["step"] == s_full["step"] == 6
    _assert_same(w_full, w_part, "state_dict")
    for key in ("optimizer", "scheduler"):
        _assert_same(s_full[key], s_part[key], key)
    _assert_same(s_full["rng"], s_part["rng"], "rng")
    # the log of the resumed run continues the first one: one row per step, same losses
    import csv
    rows = {name: [(r["step"], r["loss"]) for r in csv.DictReader(open(tmp_path / name /
                                                                        "log.csv"))]
            for name in ("full", "part")}
    assert rows["full"] == rows["part"] and len(rows["full"]) == 6
    manifest = read_checkpoint(full.last)["manifest"]
    assert manifest["steps"] == 6 and "CPU" in manifest["hardware"]
    assert manifest["data"][0]["images_count"] == 3 and manifest["licence"] == LSPET_LICENCE


def test_loss_is_masked_per_cell_and_channel():
    b, h, w = 2, 4, 4
    batch = {"pafs": torch.zeros(b, 38, h, w), "heatmaps": torch.zeros(b, 19, h, w),
             "mask": torch.ones(b, 1, h, w), "heat_weight": torch.ones(b, 19),
             "paf_weight": torch.ones(b, 38)}
    out = [Maps(heatmaps=torch.ones(b, 19, h, w), pafs=torch.ones(b, 38, h, w))] * 2
    total, per_stage = paf_loss(out, batch)
    assert per_stage.tolist() == [57 * h * w / 2] * 2 and float(total) == 57 * h * w
    batch["mask"][:, :, :2] = 0                                   # half the cells ignored
    batch["heat_weight"][:, 3] = 0                                # one channel unknown
    _, per_stage = paf_loss(out, batch)
    assert per_stage.tolist() == [56 * h * w / 4] * 2


def test_help_and_show_samples_write_pngs(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--help"])
    assert res.exit_code == 0 and "--show-samples" in res.output and "--resume" in res.output
    spec = synthetic_people(tmp_path, n_images=2, size=128)
    res = runner.invoke(main, ["train", "--data", f"{spec.annotations}:{spec.images}",
                               "--input-size", "96", "--show-samples", str(tmp_path / "png"),
                               "--num-samples", "3"])
    assert res.exit_code == 0, res.output
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 3
    picture = cv2.imread(str(pngs[0]))
    assert picture is not None and picture.shape[1] == 3 * (picture.shape[0] - 28)
    res = runner.invoke(main, ["train", "--show-samples", str(tmp_path / "x")])
    assert res.exit_code != 0 and "--data" in res.output


def test_mixed_datasets_are_sampled_by_weight():
    """Weights 3:1 over datasets of 5 and 50 images: 75% of 4000 draws from the first
    (binomial sd 0.7%; tolerance 3%); no weights: proportional to sizes (5/55)."""
    def share(sampler):
        return float(np.mean([i < 5 for i, _ in sampler]))

    mixed = MixSampler([5, 50], [3.0, 1.0], num_samples=4000, seed=11)
    assert abs(share(mixed) - 0.75) < 0.03
    assert list(mixed) == list(MixSampler([5, 50], [3.0, 1.0], num_samples=4000, seed=11))
    plain = MixSampler([5, 50], [None, None], num_samples=5500, seed=11)
    assert abs(share(plain) - 5 / 55) < 1e-9                       # exact: 100 permutations
    ranks = [MixSampler([5, 50], [3.0, 1.0], num_samples=4000, seed=11, rank=r, world_size=2)
             for r in (0, 1)]
    assert all(abs(share(r) - 0.75) < 0.04 for r in ranks)
    draws = [d for r in ranks for _, d in r]
    assert sorted(draws) == list(range(4000))                     # ranks split the epoch
    # inside a dataset, every image comes once before any comes twice
    first = [i for i, _ in mixed if i < 5][:5]
    assert sorted(first) == list(range(5))


def test_sigkilled_run_resumes_to_the_same_state(tmp_path):
    """A training process killed with SIGKILL mid-run resumes from its last atomic
    checkpoint and reaches exactly the state of an uninterrupted run at the same step."""
    import csv
    import os
    import signal
    import subprocess
    import time
    base = synthetic_people(tmp_path, n_images=4, size=96)
    data = f"{base.annotations}:{base.images}"
    common = ["--data", data, "--recipe", "tiny", "--input-size", "64", "--batch-size", "2",
              "--max-steps", "400", "--checkpoint-every", "1", "--log-every", "1",
              "--workers", "1", "--seed", "5", "-q"]
    cmd = CLI + ["train"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + common + ["--out", str(killed)], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    log = killed / "log.csv"
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and sum(1 for _ in open(log)) >= 4:      # header + 3 steps
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    k = _state(killed / "last.pt")[1]["step"]
    target = 24
    assert 1 <= k < target, k
    straight = tmp_path / "straight"
    subprocess.run(cmd + common + ["--out", str(straight), "--stop-after", str(target)],
                   env=env, check=True, capture_output=True)
    subprocess.run(cmd + ["--resume", str(killed), "--stop-after", str(target - k), "-q"],
                   env=env, check=True, capture_output=True)
    (w_a, s_a), (w_b, s_b) = _state(straight / "last.pt"), _state(killed / "last.pt")
    assert s_a["step"] == s_b["step"] == target
    _assert_same(w_a, w_b, "state_dict")
    for key in ("optimizer", "scheduler", "rng"):
        _assert_same(s_a[key], s_b[key], key)
    rows = [r["step"] for r in csv.DictReader(open(killed / "log.csv"))]
    assert rows == [str(i) for i in range(1, target + 1)]       # log continues, no gaps


def test_bad_records_do_not_kill_a_run_and_edge_values_are_refused(tmp_path):
    """Defect 8: a missing image stopped ``train`` at the step that drew it (no
    checkpoint), a NaN keypoint ended in a FloatingPointError traceback, and --resume died
    at the same place. Smaller items: --log-every 0, --max-steps -5, --stop-after 0,
    --init vgg19-torchvision:BAD."""
    spec = synthetic_people(tmp_path, n_images=4, size=96)
    doc = json.loads(open(spec.annotations).read())
    doc["annotations"][1]["keypoints"][0] = float("nan")
    open(spec.annotations, "w").write(json.dumps(doc))
    (tmp_path / "ann_images" / "0003.png").unlink()
    base = ["train", "--data", f"{spec.annotations}:{spec.images}", "--recipe", "tiny",
            "--input-size", "64", "--batch-size", "2", "--workers", "0", "--quiet"]
    run = tmp_path / "run"
    res = CliRunner().invoke(main, base + ["--max-steps", "4", "--out", str(run)])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "skipped 2 image(s) with bad records (first: annotation 2 (image 2)" in res.output
    manifest = read_checkpoint(run / "last.pt")["manifest"]
    assert manifest["steps"] == 4 and manifest["data"][0]["images_count"] == 2
    assert manifest["data"][0]["images_skipped"] == 2
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = run / f".last.pt.{dead.pid}.abcd1234.tmp"     # what a kill -9 leaves behind
    stale.write_bytes(b"half a checkpoint")
    res = CliRunner().invoke(main, ["train", "--resume", str(run), "--max-steps", "6", "-q",
                                    "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert read_checkpoint(run / "last.pt")["manifest"]["steps"] == 6
    assert not stale.exists()
    junk = tmp_path / "vgg.pth"
    junk.write_bytes(b"not a torch file")
    for extra, word in ((["--log-every", "0"], "log_every must be >= 1"),
                        (["--max-steps", "-5"], "max_steps must be >= 1"),
                        (["--max-steps", "2", "--stop-after", "0"], "must be >= 1"),
                        (["--max-steps", "2", "--init", f"vgg19-torchvision:{junk}"],
                         "cannot read as a torch file")):
        res = CliRunner().invoke(main, base + extra + ["--out", str(tmp_path / "x")])
        assert res.exit_code == 1 and word in res.output, res.output
        assert "Traceback" not in res.output and len(res.output.splitlines()) == 1


def test_finetune_from_the_shipped_weights(tmp_path, one_thread):
    """``--init checkpoint:weights/default.pt``: a few steps on 3 real images (no
    augmentation, bf16 as on a CPU): the loss falls and the AP there does not collapse."""
    sub_file, images = _three_images(tmp_path)
    shipped = default_weights_path()
    plain = AugmentParams(input_size=256, target_size=0.8, scale_range=(1.0, 1.0), rotate=0,
                          centre_jitter=0, flip=0, brightness=0, contrast=0, saturation=0)
    config = get_recipe("lightweight-finetune", init=f"checkpoint:{shipped}",
                        input_size=256, batch_size=3, lr=2e-5, warmup_steps=0,
                        max_steps=12, workers=0, log_every=1, checkpoint_every=0,
                        augment=plain)
    result = train(config, [DatasetSpec(str(sub_file), str(images))], tmp_path / "run",
                   progress=False, log=_quiet)
    losses = np.array([loss for _, loss in result.losses])
    assert losses[-3:].mean() < losses[:3].mean(), losses
    def ap(weights):
        return evaluate(sub_file, images, progress=False,
                        predictor=Predictor.from_checkpoint(weights, device="cpu"))["AP"]
    before, after = ap(shipped), ap(result.last)
    assert after > before - 0.05, (before, after)
    assert load_checkpoint(result.last).model.arch == "lightweight"


def test_distillation_pulls_towards_the_teachers_flip_averaged_maps(tmp_path, one_thread):
    """``teacher``: its flip-averaged maps are a second target on every cell; a student
    that starts as its teacher starts with a small teacher term, and training runs."""
    from openpaf.train.loss import distill_loss, teacher_maps
    torch.manual_seed(0)
    teacher = create_model("lightweight_tiny").eval()
    x = torch.randn(2, 3, 64, 48)
    t = teacher_maps(teacher, x)
    assert t.shape == (2, 57, 8, 6)
    same = distill_loss(teacher(x), t)
    other = distill_loss(create_model("lightweight_tiny")(x), t)
    assert 0 <= float(same) < float(other)
    sub_file, images = _three_images(tmp_path)
    path = save_checkpoint(tmp_path / "t.pt", teacher, normalisation=InputNorm(), manifest={})
    config = TrainConfig(model="lightweight_tiny", init=f"checkpoint:{path}",
                         teacher=str(path), input_size=64, batch_size=2, max_steps=3,
                         workers=0, log_every=1, checkpoint_every=0,
                         augment=AugmentParams(input_size=64))
    result = train(config, [DatasetSpec(str(sub_file), str(images))], tmp_path / "run",
                   progress=False, log=_quiet)
    assert result.steps == 3 and np.isfinite([loss for _, loss in result.losses]).all()
    assert read_checkpoint(result.last)["manifest"]["train_config"]["teacher"] == str(path)


def test_resume_refuses_options_it_cannot_apply(tmp_path):
    """Issue 21 item 12: ``--resume`` with ``--model`` or ``--lr`` ignored them but wrote
    them into last.pt's config and manifest. Now: refused in one line, record unchanged;
    the same value, or the run length, is fine. Also ``--teacher-weight -5`` is refused."""
    from openpaf_cli.main import USAGE_EXIT
    spec = synthetic_people(tmp_path, n_images=2, size=96)
    run = tmp_path / "run"
    base = ["--workers", "0", "--quiet"]
    res = CliRunner().invoke(main, ["train", "--data", f"{spec.annotations}:{spec.images}",
                                    "--recipe", "tiny", "--input-size", "64", "--batch-size",
                                    "2", "--max-steps", "4", "--stop-after", "1", "--lr",
                                    "0.001", "--out", str(run), *base])
    assert res.exit_code == 0, res.output
    before = (run / "last.pt").read_bytes()
    for extra, word in ((["--lr", "0.5"], "--lr"), (["--model", "small"], "--model"),
                        (["--batch-size", "1"], "--batch-size"), (["--seed", "9"], "--seed")):
        res = CliRunner().invoke(main, ["train", "--resume", str(run), *extra, *base])
        assert res.exit_code == USAGE_EXIT and word in res.output, (extra, res.output)
        assert "Traceback" not in res.output
        assert (run / "last.pt").read_bytes() == before
    res = CliRunner().invoke(main, ["train", "--resume", str(run), "--lr", "0.001",
                                    "--max-steps", "3", "--stop-after", "1", *base])
    assert res.exit_code == 0, res.output
    ckpt = read_checkpoint(run / "last.pt")
    config = ckpt["extra"]["train_state"]["config"]
    assert config["lr"] == 0.001 and config["max_steps"] == 3
    assert ckpt["manifest"]["train_config"]["lr"] == 0.001
    res = CliRunner().invoke(main, ["train", "--data", f"{spec.annotations}:{spec.images}",
                                    "--recipe", "tiny", "--teacher-weight", "-5",
                                    "--out", str(tmp_path / "t"), *base])
    assert res.exit_code == USAGE_EXIT and "--teacher-weight" in res.output, res.output
