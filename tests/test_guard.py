"""Issue 21 items 4, 5, 11: no command writes its output over one of its inputs (also
through symbolic and hard links), and an unwritable output is one line, not a traceback."""
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from openpaf_cli.main import main
from openpaf.io.guard import OutputError, check_output
from openpaf.model import create_model
from openpaf.structures import InputNorm
from openpaf.weights.checkpoint import save_checkpoint


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", create_model("tiny"), normalisation=InputNorm(),
                           manifest={"name": "tiny"}, variant="tiny")


def _refused(args, victim):
    """Run the CLI; it must exit 1 in one line and leave ``victim`` byte for byte."""
    before = victim.read_bytes()
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "refusing to overwrite" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert victim.read_bytes() == before


def test_check_output_sees_through_symbolic_and_hard_links(tmp_path):
    src = tmp_path / "a.pt"
    src.write_bytes(b"x")
    (tmp_path / "sym.pt").symlink_to(src)
    os.link(src, tmp_path / "hard.pt")
    for name in ("a.pt", "sym.pt", "hard.pt"):
        with pytest.raises(OutputError, match="refusing to overwrite"):
            check_output(tmp_path / name, [src])
    check_output(tmp_path / "new.pt", [src])                 # another name is fine
    with pytest.raises(OutputError, match="cannot write in"):
        check_output(src / "r.json", [])                      # its folder is a file


def test_eval_json_never_replaces_the_annotations(tmp_path):
    from test_data import synthetic_people
    data = synthetic_people(tmp_path, n_images=1, size=96)
    ann = Path(data.annotations)
    base = ["eval", "--ann", ann, "--oracle", "-q", "--json"]
    _refused(base + [ann], ann)
    (tmp_path / "link.json").symlink_to(ann)
    _refused(base + [tmp_path / "link.json"], ann)
    image = sorted(Path(data.images).iterdir())[0]
    _refused(["eval", "--ann", ann, "--images", data.images, "--oracle", "-q",
              "--json", image], image)


def test_eval_json_into_an_unwritable_place_is_one_line(tmp_path):
    from test_data import synthetic_people
    data = synthetic_people(tmp_path, n_images=1, size=96)
    (tmp_path / "file.txt").write_text("a file, not a folder")
    res = CliRunner().invoke(main, ["eval", "--ann", data.annotations, "--oracle", "-q",
                                    "--json", str(tmp_path / "file.txt" / "r.json")])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "cannot write in" in res.output and res.exception.__class__ is SystemExit


def test_benchmark_json_never_replaces_an_input(tmp_path, tiny):
    from test_data import synthetic_people
    data = synthetic_people(tmp_path, n_images=1, size=96)
    ann = Path(data.annotations)
    _refused(["benchmark", "--no-network", "--ann", ann, "--json", ann], ann)
    image = sorted(Path(data.images).iterdir())[0]
    os.link(image, tmp_path / "hard.jpg")
    _refused(["benchmark", "--weights", tiny, "--images", data.images, "--json",
              tmp_path / "hard.jpg"], image)
    _refused(["benchmark", "--weights", tiny, "--json", tiny], tiny)


def test_weight_commands_never_replace_their_source(tmp_path, tiny):
    xml = tmp_path / "model.xml"
    xml.write_text("<net/>")
    (tmp_path / "model.bin").write_bytes(b"\0" * 8)
    _refused(["weights", "import", xml, "-o", xml], xml)
    _refused(["weights", "import", xml, "-o", tmp_path / "model.bin"], tmp_path / "model.bin")
    pb = tmp_path / "graph_opt.pb"
    pb.write_bytes(b"\0" * 8)
    (tmp_path / "link.pb").symlink_to(pb)
    _refused(["weights", "import", pb, "-o", tmp_path / "link.pb"], pb)
    _refused(["weights", "pack", tiny, "-o", tiny], tiny)
    os.link(tiny, tmp_path / "hard.pt")
    _refused(["weights", "pack", tiny, "-o", tmp_path / "hard.pt"], tiny)
    _refused(["weights", "pack", tiny, "-o", tmp_path / "packed.pt", "--manifest-json", tiny],
             tiny)
    _refused(["weights", "export", tiny, "-o", tiny], tiny)
    _refused(["export", "--onnx", tiny, "-w", tiny], tiny)


def test_a_read_only_folder_is_one_line_before_any_work(tmp_path, tiny, monkeypatch):
    """Item 11: export --onnx, eval --json and benchmark --json into a read-only folder
    were tracebacks (after the work). Tests run as root here, so the folder's mode is
    simulated where the guard asks for it."""
    import openpaf.io.guard as guard
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(guard.os, "access", lambda p, mode: Path(p) != ro)
    from test_data import synthetic_people
    data = synthetic_people(tmp_path, n_images=1, size=96)
    for args in (["export", "--onnx", ro / "m.onnx", "-w", tiny],
                 ["eval", "--ann", data.annotations, "--oracle", "-q", "--json", ro / "r.json"],
                 ["benchmark", "--no-network", "--ann", data.annotations, "--json",
                  ro / "r.json"]):
        res = CliRunner().invoke(main, [str(a) for a in args])
        assert res.exit_code == 1 and "Traceback" not in res.output, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(f"cannot write in {ro}"), res.output
