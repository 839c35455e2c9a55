"""The unlearning engine: losses, the method registry and the training loop (docs/UNLEARN.md).
Import its parts from here (`from quail.unlearn import METHODS`): the attribute `quail.unlearn`
is the function `unlearn`."""

from quail.unlearn.api import UnlearnResult, unlearn
from quail.unlearn.config import UnlearnConfig, load_config, make_config
from quail.unlearn.methods import METHODS, Method

__all__ = [
    "METHODS",
    "Method",
    "UnlearnConfig",
    "UnlearnResult",
    "load_config",
    "make_config",
    "unlearn",
]
