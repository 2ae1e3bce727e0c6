"""adapt-robot: meta-trained robot policies that adapt on-line, exported to ONNX."""

__version__ = "0.1.0"
