"""Model specs: a registry and one module per architecture."""
