"""Errors a user can act on. The CLI prints them as one line (no traceback unless ``--debug``)."""

from __future__ import annotations


class GenauditError(Exception):
    """Base class of every error whose message is meant for the user."""


class InputError(GenauditError):
    """Bad user input: a missing path, an unknown name, a malformed manifest, too few samples."""


class WeightsError(GenauditError):
    """Model weights missing, unreadable, or not matching their recorded sha256."""
