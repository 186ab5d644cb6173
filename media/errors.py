"""Errors of the media path that every layer above may catch."""

from __future__ import annotations


class MediaError(Exception):
    """A media operation failed (no audio on the leg, unplayable file, worker gone, a failed bridge or tap)."""
