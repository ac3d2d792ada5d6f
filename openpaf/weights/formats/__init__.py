"""Foreign weight formats behind one interface: sniff a file by content, read it into a
native model.

Each format is one file in this package with a ``WeightFormat`` subclass and a
``register_format(...)`` call at its bottom; the import lines at the end of this file
register them. ``import_weights`` (``openpaf weights import``) and ``--weights FILE``
(``openpaf.weights.load_weights``) both pick the format by content, not by suffix.

    >>> from openpaf.weights.formats import detect_format, import_weights
    >>> import_weights("human-pose-estimation-0001.xml", "hpe.pt")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...model import PafModel
from ...structures import InputNorm
from ..checkpoint import CheckpointError, PathLike, save_checkpoint

SNIFF_BYTES = 4096


@dataclass
class Imported:
    """A foreign file read into a native network (float32, eval mode, weights loaded)."""

    model: PafModel
    normalisation: InputNorm
    manifest: dict                      # source (names, sha256, release), licence, conversion
    variant: str | None = None          # the registered variant it matches, if any
    notes: list[str] = field(default_factory=list)   # what the user should know (one line each)


class WeightFormat:
    """One foreign format. Subclasses set ``name``/``description`` and implement both
    methods; ``read`` raises a one-line ``CheckpointError`` naming the layer at fault."""

    name: str = ""
    description: str = ""

    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether the file at ``path`` (first bytes ``head``) is in this format."""
        raise NotImplementedError

    def read(self, path: Path) -> Imported:
        raise NotImplementedError


FORMATS: list[WeightFormat] = []


def register_format(fmt: WeightFormat) -> WeightFormat:
    """Add ``fmt`` to the formats ``detect_format`` tries, in registration order."""
    if any(f.name == fmt.name for f in FORMATS):
        raise ValueError(f"weight format {fmt.name!r} is already registered")
    FORMATS.append(fmt)
    return fmt


def detect_format(path: PathLike) -> WeightFormat | None:
    """The registered format whose ``sniff`` recognises the file, or None."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    return next((fmt for fmt in FORMATS if fmt.sniff(path, head)), None)


def read_foreign(path: PathLike) -> Imported:
    """Read a foreign file in whichever registered format it is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file not found: {path}")
    fmt = detect_format(path)
    if fmt is None:
        from .torch_files import is_torch_file, load_torch_file
        with open(path, "rb") as f:
            if is_torch_file(f.read(8)):
                load_torch_file(path)           # an unreadable torch file: say why
        known = ", ".join(f"{f.name} ({f.description})" for f in FORMATS)
        raise CheckpointError(f"{path}: not a weight format openpaf can import; it "
                              f"reads openpaf checkpoints and {known}")
    return fmt.read(path)


def import_weights(src: PathLike, dst: PathLike, *, half: bool = False) -> Imported:
    """Convert the foreign file ``src`` into an openpaf checkpoint at ``dst``.

    Nothing is written when reading fails (one-line ``CheckpointError``).
    """
    imported = read_foreign(src)
    save_checkpoint(dst, imported.model, normalisation=imported.normalisation,
                    manifest=imported.manifest, half=half, variant=imported.variant)
    return imported


# One line per format (each registers itself).
from . import cmu  # noqa: E402,F401
from . import openvino_ir  # noqa: E402,F401
from . import tf_graph  # noqa: E402,F401
from . import torchvision_vgg  # noqa: E402,F401
