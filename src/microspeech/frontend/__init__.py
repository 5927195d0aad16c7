"""The TFLM micro frontend, bit-exact: settings, batch kernels and a streaming frontend."""
