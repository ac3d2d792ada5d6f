"""Exporting openpaf models to other formats (ONNX).

    >>> from openpaf.export import export_onnx
"""
from .onnx import DEFAULT_OPSET, ExportError, ExportReport, export_onnx, verify_onnx

__all__ = ["DEFAULT_OPSET", "ExportError", "ExportReport", "export_onnx", "verify_onnx"]
