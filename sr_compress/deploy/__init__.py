"""Deployment: ONNX export + validation (``onnx``), exact tiled inference (``tiling``), benchmarks, reports.

Submodules are imported on demand; ``tiling`` imports only numpy at module level so the torch-free runner
(``export/run.py``) can load that one file by path.
"""
