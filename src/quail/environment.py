"""What a run records about where it ran, so a result can be traced and reproduced."""

import platform
from importlib import metadata

PACKAGES = ("quail-unlearn", "torch", "transformers", "accelerate", "peft", "safetensors")


def environment() -> dict:
    """Python, the platform and the versions of the packages that shape a result."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
