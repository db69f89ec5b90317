"""The knowledge base's errors, importable without loading the index (numpy, morphology):
the plugin, its commands and its admin route catch them whether or not the base is on."""

from __future__ import annotations


class UnsafeReindex(Exception):
    """Indexing would empty a non-empty index because the folder is missing or empty."""
