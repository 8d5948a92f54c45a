"""Error types raised by :mod:`analysis`.

Every failure that comes from the *input* (a file that is not a model, a tensor
whose bytes do not match its shape, an external-data path escaping the model
folder ...) is raised as a :class:`QuantLensError` subclass with a message meant
for the user.  Anything else is a bug.
"""

__all__ = ["QuantLensError", "ModelLoadError", "TensorReadError", "UnsafeModelError"]


class QuantLensError(Exception):
    """Base class of every error caused by the input rather than by QuantLens."""


class ModelLoadError(QuantLensError):
    """The file cannot be read as an ONNX model (not protobuf, empty, no graph...)."""


class TensorReadError(QuantLensError):
    """One tensor cannot be decoded (short data, bad dims, unsupported type)."""


class UnsafeModelError(QuantLensError):
    """The model points outside its folder (external data escaping, links)."""
