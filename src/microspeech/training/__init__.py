"""Training, checkpoints and quantization to a full-int8 .tflite."""
