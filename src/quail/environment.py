"""What a run records about where it ran, so a result can be traced and reproduced."""

import platform
from importlib import metadata

import torch

PACKAGES = ("quail-unlearn", "torch", "transformers", "accelerate", "peft", "safetensors")


def environment() -> dict:
    """Python, the platform, the GPU if any, and the versions of the packages that shape a
    result."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        found["gpu"] = f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
        found["cuda"] = torch.version.cuda
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
