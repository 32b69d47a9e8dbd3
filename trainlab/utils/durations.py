"""Durations as people read them: ``1:02:03`` or ``2:03``."""

from __future__ import annotations


def format_duration(seconds: float | None, missing: str = "") -> str:
    """``seconds`` as h:mm:ss (m:ss under an hour); ``missing`` when unknown."""
    if seconds is None:
        return missing
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = ["format_duration"]
