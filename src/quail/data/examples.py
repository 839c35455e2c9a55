"""The unit every unlearning loss and metric consumes: a prompt and the target that follows it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """`prompt` is context only (never trained on, may be empty); `target` carries the loss."""

    prompt: str
    target: str

    @property
    def prompted(self) -> bool:
        """A prompt and its answer (a question), not a passage."""
        return bool(self.prompt.strip())
