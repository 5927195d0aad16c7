"""microspeech: train, quantize, evaluate, profile and run tiny keyword-spotting models.

The data flow follows the subpackages: audio -> frontend -> data -> models ->
training -> tflite -> evaluation / detection.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("microspeech")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
