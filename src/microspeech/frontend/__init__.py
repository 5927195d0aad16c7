"""The TFLM micro frontend, bit-exact: settings, batch kernels and a streaming frontend.

from microspeech.frontend import FrontendSettings, compute_features, StreamingFrontend, uint16_to_int8
"""

from microspeech.frontend.batch import compute_features
from microspeech.frontend.quantize import uint16_to_int8
from microspeech.frontend.settings import FrontendSettings, FrontendSettingsError
from microspeech.frontend.streaming import StreamingFrontend

__all__ = [
    "FrontendSettings",
    "FrontendSettingsError",
    "StreamingFrontend",
    "compute_features",
    "uint16_to_int8",
]
