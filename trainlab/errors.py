"""Errors a user can cause and fix: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TrainLabError(Exception):
    """A problem in the user's config, data, files or command line (not a bug in TrainLab)."""

    def __str__(self) -> str:  # KeyError subclasses would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(TrainLabError, ValueError):
    """A config key, value or type that cannot be used."""


class RegistryError(TrainLabError, KeyError):
    """A name that no registry knows, or a component built with arguments it does not take."""


class DataError(TrainLabError, ValueError):
    """Input data that is missing, empty or malformed."""


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return `" — did you mean 'x'?"` for the closest candidate, or an empty string."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:  # only the case differs: that is the match
        return f" — did you mean '{lowered[word.lower()]}'?"
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not matches:
        matches = [lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f" — did you mean '{matches[0]}'?" if matches else ""
