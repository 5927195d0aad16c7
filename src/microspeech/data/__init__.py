"""Datasets: listing clips (path, word, speaker, split), reading them, augmenting them."""
