"""Errors the engine reports to people. Each message says what is wrong and, where it can, what to do."""

from __future__ import annotations


class HearthError(Exception):
    """An error meant to be shown to the user as one clear line."""


class FolderUnavailable(HearthError, OSError):
    """A folder Hearth keeps its files in cannot be created (read-only disk, no permission, full
    disk). An OSError too, with errno and filename, for callers that tell those apart."""

    def __init__(self, errno_: int | None, strerror: str, filename: str, message: str) -> None:
        super().__init__(errno_, strerror, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ModelFolderError(HearthError):
    """A model folder (or cached repo) that cannot be used, and why."""


class ModelNotFound(ModelFolderError):
    pass


class ConfigError(ModelFolderError):
    """config.json is missing, unreadable or not a JSON object."""


class UnsupportedModelType(ModelFolderError):
    pass


class NoSafetensors(ModelFolderError):
    pass


class LegacyNpzLayout(NoSafetensors):
    """The old mlx-examples layout (weights.npz), which mlx-lm no longer loads."""


class PickleWeights(NoSafetensors):
    """Only pickle-based weights (.bin/.pt/.pth/.ckpt): never loaded, since unpickling runs code."""


class MissingTokenizer(ModelFolderError):
    pass


class WeightsMismatch(ModelFolderError):
    """The weights do not have the shapes or names the config describes."""


class ModelTooLarge(HearthError):
    """The fit check says the model and its KV cache cannot fit in this machine's memory."""


class PromptError(HearthError):
    """The messages cannot be turned into a prompt for this model."""


class ContextOverflow(PromptError):
    """Even the newest message (with the system prompt) does not fit in the context window."""


class EngineStopped(HearthError):
    """A request was made after the engine shut down."""
