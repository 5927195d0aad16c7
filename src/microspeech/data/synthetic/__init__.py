"""An offline, deterministic Speech-Commands-style dataset spoken by speech synthesizers (eSpeak NG)."""

from microspeech.data.synthetic.generate import (
    PRESETS,
    Generation,
    SynthesisError,
    SyntheticConfig,
    generate_synthetic,
    load_synthetic,
    synthetic_dir,
)

__all__ = [
    "PRESETS",
    "Generation",
    "SynthesisError",
    "SyntheticConfig",
    "generate_synthetic",
    "load_synthetic",
    "synthetic_dir",
]
