"""The unlearning engine: losses, the method registry and the training loop (docs/UNLEARN.md).
Import its parts from here (`from quail.unlearning import METHODS`)."""

from quail.unlearning.api import UnlearnResult, unlearn
from quail.unlearning.config import UnlearnConfig, load_config, make_config
from quail.unlearning.methods import METHODS, Method

__all__ = [
    "METHODS",
    "Method",
    "UnlearnConfig",
    "UnlearnResult",
    "load_config",
    "make_config",
    "unlearn",
]
