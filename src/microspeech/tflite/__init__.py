"""The .tflite file: metadata, runtimes, summary, profiling, C export, diagrams."""
