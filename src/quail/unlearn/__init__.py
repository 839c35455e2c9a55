"""The unlearning engine: losses, the method registry and the training loop (docs/UNLEARN.md).

`quail.unlearn(...)` calls `quail.unlearn.unlearn(...)`."""

from quail.callable_module import make_callable
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

make_callable(__name__, "unlearn")
