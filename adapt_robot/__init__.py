"""adapt-robot: meta-trained robot policies that adapt on-line, exported to ONNX."""

__version__ = "0.1.0"

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread counts numpy's BLAS reads once, when numpy is first imported. The on-device adapter
wants them at 1 (a multithreaded BLAS made one adaptation several times slower on 2 cores);
they live here, numpy-free, so the CLI can set them before anything imports numpy."""
