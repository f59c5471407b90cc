"""Errors raised by the inference package; the web layer maps them to HTTP."""


class InferenceError(Exception):
    """Base class: ``code`` is a stable machine-readable name for API clients."""

    code = "inference_error"


class InvalidImage(InferenceError):
    """The bytes are empty, corrupt, truncated or not an image at all."""

    code = "invalid_image"


class UnsupportedFormat(InferenceError):
    """The bytes are a real file of a format we do not accept (SVG, PDF, TIFF...)."""

    code = "unsupported_format"


class ImageTooLarge(InferenceError):
    """The image claims more pixels than we are willing to decode."""

    code = "image_too_large"


class ImageTooComplex(InferenceError):
    """The image would cost more to decode than we allow: too many JPEG scans,
    or more CPU time than the decode budget."""

    code = "image_too_complex"


class DecodeBusy(InferenceError):
    """The process's decode memory budget stayed taken for too long: shed like
    an overload (503, retry soon)."""

    code = "overloaded"


class ModelUnavailable(InferenceError):
    """The model is not loaded (yet), or could not be loaded."""

    code = "model_unavailable"


class WeightsUnavailable(InferenceError):
    """The configured weights cannot be found or downloaded."""

    code = "weights_unavailable"
