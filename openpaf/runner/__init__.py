"""The inference run: inputs -> predict -> (track) -> writers, with a run manifest.

``options`` (``InferOptions``, ``RunSummary``, exit codes), ``layout`` (output paths and
the resume rules), ``loop`` (``run_inference``).
"""
from .layout import OutputLayout, run_files
from .options import (EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_TERMINATED,
                      InferOptions,
                      RunSummary)


def __getattr__(name: str):
    """``Predict`` and ``run_inference`` on first use: ``loop`` imports torch, which
    ``openpaf --help`` must not pay for."""
    if name in ("Predict", "run_inference"):
        from . import loop
        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["InferOptions", "OutputLayout", "Predict", "RunSummary", "run_files",
           "run_inference", "EXIT_OK", "EXIT_FATAL", "EXIT_SOME_FAILED", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED"]
