"""The inference run: inputs -> predict -> (track) -> writers, with a run manifest.

``options`` (``InferOptions``, ``RunSummary``, exit codes), ``layout`` (output paths and
the resume rules), ``loop`` (``run_inference``).
"""
from .layout import OutputLayout, run_files
from .loop import Predict, run_inference
from .options import (EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED, EXIT_TERMINATED,
                      InferOptions,
                      RunSummary)

__all__ = ["InferOptions", "OutputLayout", "Predict", "RunSummary", "run_files",
           "run_inference", "EXIT_OK", "EXIT_FATAL", "EXIT_SOME_FAILED", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED"]
