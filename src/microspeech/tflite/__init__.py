"""The .tflite file: metadata, runtimes, summary, profiling, C export, diagrams.

    from microspeech.tflite.metadata import read_parameters, write_parameters   # SL_PARAMSv1
    from microspeech.tflite.runtime import TfliteRunner                         # LiteRT / TFLM
    from microspeech.tflite.summary import summarize_tflite, summarize_keras    # layers, MACs/OPs
    from microspeech.tflite.profile import find_min_arena_size, profile_model   # arena, latency
    from microspeech.tflite.graph import simplify_graph                         # exact RESHAPE removal
    from microspeech.tflite.export_c import export_c                            # firmware sources
    from microspeech.tflite.diagram import draw_model                           # SVG/PNG

Submodules are imported on demand: importing this package loads no runtime.
"""
