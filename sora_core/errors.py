"""Exceptions that say what was wrong and what to do about it."""


class SoraError(Exception):
    """Base class for every error sora_core raises on purpose."""


class WeightsError(SoraError):
    """A weights file is missing, unreadable, pickled, truncated or of the wrong layout."""


class InputError(SoraError, ValueError):
    """A user-given value (size, frame count, sampler name ...) is not acceptable."""


class GenerationCancelled(SoraError):
    """The cancel hook asked sampling to stop."""
