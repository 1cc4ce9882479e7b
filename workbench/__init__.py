"""TensorRT Workbench core: ONNX model intake, build specs, build jobs, reports.

Nothing in this package imports Streamlit except :mod:`workbench.ui`, and heavy
backends (TensorRT, TensorRT-RTX, Polygraphy, ONNX Runtime) are imported lazily
inside the functions that need them.
"""

__version__ = "0.1.0"
