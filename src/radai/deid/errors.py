"""Errors of the de-identification engine whose messages name attributes, never values."""

from __future__ import annotations


class DeidentificationRefused(ValueError):
    """The object cannot be de-identified as asked (burned-in text without usable regions to blank)."""
