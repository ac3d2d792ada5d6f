"""Runtimes other than torch that run an openpaf model (ONNX Runtime).

Each is one module with a class that ``Predictor`` can use as its model.
"""

# Network precisions a user can ask for (``runtime.precision``); here, free of torch, so
# the CLI can offer them without importing it.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
