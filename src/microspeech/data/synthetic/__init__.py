"""An offline, deterministic Speech-Commands-style dataset spoken by speech synthesizers (eSpeak NG)."""

from microspeech.data.synthetic.generate import (
    PRESETS,
    Generation,
    SynthesisError,
    SyntheticConfig,
    generate_synthetic,
    load_synthetic,
    parse_words,
    read_synthetic_manifest,
    synthetic_dir,
    word_folder,
)

__all__ = [
    "PRESETS",
    "Generation",
    "SynthesisError",
    "SyntheticConfig",
    "generate_synthetic",
    "load_synthetic",
    "parse_words",
    "read_synthetic_manifest",
    "synthetic_dir",
    "word_folder",
]
