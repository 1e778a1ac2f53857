"""User-facing errors: the CLI prints these as one red line and exits with status 1, no traceback."""

from __future__ import annotations

from pathlib import Path


class SaipError(Exception):
    """Base class of every error caused by the user's input (files, names, options), not by a bug."""


class DataFormatError(SaipError):
    """A dataset file or folder does not match its format; the message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class CheckpointError(SaipError):
    """A checkpoint cannot be read, or does not fit the backbone it is loaded into."""


class ConfigError(SaipError):
    """A config file or override is malformed or names an unknown key."""


class NonFiniteLossError(SaipError):
    """The training loss became NaN or infinite; training stopped before the bad step changed saved state."""


class Interrupted(SaipError):
    """A run stopped on SIGTERM/SIGINT after saving a checkpoint; ``--resume`` continues it exactly."""
