"""Runtimes other than torch that run an openpaf model (ONNX Runtime).

Each is one module with a class that ``Predictor`` can use as its model.
"""
