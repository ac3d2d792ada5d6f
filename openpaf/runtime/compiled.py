"""Compiled execution for streams: ``torch.compile`` (inductor, freezing) per input shape.

``CompiledNetwork(model)`` is a drop-in for ``model.predict`` (``x -> Maps``). Inputs are
padded on the right (with 0 = the normalised grey pad of the default model) to a width
that is a multiple of ``bucket`` pixels (the height is the network height already), so a
folder of mixed sizes compiles a handful of graphs; the maps are cropped back. When to compile is a rule (``should_compile``): a shape is
compiled once ``frames seen x saving per frame >= compile time`` (the stream is assumed
to last at least as long again), so a single photo never compiles and stays at eager
speed. The compile time is the one recorded for this model and shape in the cache index
when there is one (a warm disk cache compiles in about a second), else
``COLD_COMPILE_S``. Inductor's caches live under ``cache_root()/inductor``
(``$TORCHINDUCTOR_CACHE_DIR`` wins), so a second run of the same video starts fast.
Without a C++ compiler, or when compiling fails, it runs eager after one line saying why.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..structures import Maps

# benchmarks/choices/compile_rule.json (default model, auto precision, 456x640, 2 threads
# of a shared AMD EPYC with AVX512-BF16): compiled 135 ms against eager 157 ms (SAVING
# 0.14), a cold compile 23 s. COLD_COMPILE_S is the prior until this machine has compiled
# a (model, shape) once; then its measured time from the cache index is used. At these
# figures a stream compiles after ~1000 frames of one size.
COLD_COMPILE_S = 23.0
SAVING = 0.14
BUCKET = 64


def cache_root() -> Path:
    """``$OPENPAF_CACHE``, else ``$XDG_CACHE_HOME/openpaf``, else ``~/.cache/openpaf``."""
    env = os.environ.get("OPENPAF_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "openpaf"


def compiler_missing() -> str | None:
    """Why inductor cannot compile here (no C++ compiler), or None."""
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(n and shutil.which(n) for n in names):
        return None
    return "no C++ compiler (g++/clang++) found"


def bucket_shape(height: int, width: int, bucket: int = BUCKET) -> tuple[int, int]:
    """``(height, width)`` with the width rounded up to a multiple of ``bucket``."""
    return height, -(-width // bucket) * bucket


def should_compile(frames: int, eager_s: float, compile_s: float,
                   saving: float = SAVING) -> bool:
    """Compile once ``frames x (saving x eager_s) >= compile_s`` (seconds per frame)."""
    return frames * saving * eager_s >= compile_s


class CompileIndex:
    """Compile seconds measured per (model, shape) key, in ``cache_root()/compiled.json``."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_root() / "compiled.json"
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str) -> float | None:
        return self.data.get(key)

    def put(self, key: str, seconds: float) -> None:
        self.data[key] = round(seconds, 3)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1))
            os.replace(tmp, self.path)
        except OSError:
            pass


def model_key(model: torch.nn.Module) -> str:
    """A short hash of the model's class, parameter shapes, dtypes and a few values."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, p in model.state_dict().items():
        h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
        h.update(p.detach().flatten()[:4].float().cpu().numpy().tobytes())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:16]


class CompiledNetwork:
    """``x (B, 3, H, W) -> Maps`` through a compiled graph per shape bucket.

    always: compile every shape at its first frame (``--compile``); False: by the rule.
    say: where the one-line fallback message goes (default: stderr).
    """

    def __init__(self, model: torch.nn.Module, *, always: bool = False,
                 bucket: int = BUCKET, index: CompileIndex | None = None,
                 say: Callable[[str], None] | None = None):
        self.model, self.always, self.bucket = model, always, bucket
        self.stride = int(getattr(model, "stride", 8))
        self.say = say or (lambda msg: print(msg, file=sys.stderr))
        self.index = index
        self.key = None
        self.disabled = compiler_missing()
        if self.disabled:
            self.say(f"compile: off, {self.disabled}; running eager")
        self.compiled = None
        self.ready: set[tuple] = set()
        self.frames: dict[tuple, int] = {}
        self.eager_s: dict[tuple, float] = {}
        self.compile_s: dict[tuple, float] = {}

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.predict(x)
        return out.heatmaps, out.pafs

    def _compile_fn(self):
        if self.compiled is None:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))
            import torch._dynamo
            import torch._inductor.config as inductor
            torch._dynamo.config.recompile_limit = max(
                torch._dynamo.config.recompile_limit, 32)
            inductor.freezing = True
            self.compiled = torch.compile(self._forward, dynamic=False)
        return self.compiled

    def _shape_key(self, shape: tuple) -> str:
        if self.key is None:
            self.key = model_key(self.model)
        return f"{self.key}-{'x'.join(map(str, shape))}"

    def _wants(self, shape: tuple) -> bool:
        if self.disabled:
            return False
        if self.always:
            return True
        self.index = self.index or CompileIndex()
        cost = self.index.get(self._shape_key(shape))
        return should_compile(self.frames.get(shape, 0), self.eager_s[shape],
                              COLD_COMPILE_S if cost is None else cost)

    def _run_compiled(self, x: torch.Tensor, shape: tuple) -> Maps:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, shape[-1] - w, 0, shape[-2] - h))
        if x.is_contiguous(memory_format=torch.channels_last):
            padded = padded.contiguous(memory_format=torch.channels_last)
        hm, paf = self._compile_fn()(padded)
        mh, mw = -(-h // self.stride), -(-w // self.stride)
        return Maps(hm[..., :mh, :mw], paf[..., :mh, :mw])

    def _compile(self, x: torch.Tensor, shape: tuple) -> Maps | None:
        t0 = time.perf_counter()
        try:
            out = self._run_compiled(x, shape)
        except Exception as e:         # inductor/dynamo failures are many and varied
            self.disabled = f"compiling failed ({type(e).__name__}: {str(e).splitlines()[0]})"
            self.say(f"compile: off, {self.disabled[:200]}; running eager")
            return None
        self.compile_s[shape] = time.perf_counter() - t0
        self.ready.add(shape)
        self.index = self.index or CompileIndex()
        self.index.put(self._shape_key(shape), self.compile_s[shape])
        return out

    def __call__(self, x: torch.Tensor) -> Maps:
        shape = tuple(x.shape[:2]) + bucket_shape(x.shape[-2], x.shape[-1], self.bucket)
        if shape in self.ready:
            return self._run_compiled(x, shape)
        if (self.always or shape in self.eager_s) and self._wants(shape):
            out = self._compile(x, shape)
            if out is not None:
                return out
        t0 = time.perf_counter()
        out = self.model.predict(x)
        self.frames[shape] = self.frames.get(shape, 0) + 1
        self.eager_s[shape] = time.perf_counter() - t0
        return out
