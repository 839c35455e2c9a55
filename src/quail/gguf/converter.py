"""llama.cpp's own converter (convert_hf_to_gguf.py), which writes a Hugging Face folder as a
GGUF file.

The converter is a script in llama.cpp's source tree, not in the llama-cpp-python wheel. quail
finds it, in this order:

1. `$QUAIL_LLAMA_CPP`: a llama.cpp source folder (a git checkout) of the user's choice;
2. the converter of the installed llama-cpp-python's own sdist, which holds the llama.cpp it
   was built from: fetched once with `pip download` (the package registry, nothing else) and
   unpacked into `$QUAIL_CACHE/llama.cpp/<version>` (only the converter, its `conversion`
   package and `gguf-py`). The converter and the quantizer then come from the same llama.cpp.
"""

import os
import subprocess
import sys
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from quail.errors import QuailError
from quail.gguf.llamacpp import version
from quail.io import atomic_dir, cache_root

SCRIPT = "convert_hf_to_gguf.py"
NEEDED = (SCRIPT, "conversion/", "gguf-py/")  # what the script imports from its tree


def local_script() -> Path:
    """Where the converter is, or would be once fetched; nothing is downloaded here."""
    own = os.environ.get("QUAIL_LLAMA_CPP")
    if own:
        script = Path(own).expanduser() / SCRIPT
        if not script.is_file():
            raise QuailError(f"QUAIL_LLAMA_CPP={own} holds no {SCRIPT}: point it at llama.cpp")
        return script
    return cache_root() / "llama.cpp" / version() / SCRIPT


def converter_script(log: Callable[[str], None] = print) -> Path:
    """The path of convert_hf_to_gguf.py, fetched into the cache on first use."""
    script = local_script()
    if not script.is_file():
        log(f"fetching llama.cpp's converter (llama-cpp-python {version()} sdist) into the cache")
        fetch_converter(version(), script.parent)
    return script


def download_command(version_: str, into: str) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
        f"llama-cpp-python=={version_}", "-d", into,
    ]  # fmt: skip


def fetch_converter(version_: str, folder: Path) -> None:
    """Download the sdist of llama-cpp-python `version_` and unpack the converter's files."""
    with tempfile.TemporaryDirectory(prefix="quail-llama-cpp-") as tmp:
        command = download_command(version_, tmp)
        done = subprocess.run(command, capture_output=True, text=True)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise OSError(
                f"could not download llama.cpp's converter (`{' '.join(command)}` failed); "
                "or set QUAIL_LLAMA_CPP to a llama.cpp source folder"
            )
        with tarfile.open(archives[0]) as archive, atomic_dir(folder, overwrite=True) as out:
            for member in archive.getmembers():
                _, found, inner = member.name.partition("/vendor/llama.cpp/")
                if found and inner.startswith(NEEDED) and (member.isfile() or member.isdir()):
                    member.name = inner
                    archive.extract(member, out, filter="data")


def convert(
    model_dir: Path, out: Path, outtype: str = "f32", progress: Callable[[str], None] = print
) -> None:
    """Run the converter on `model_dir`, writing `out`; `progress` gets each line it logs. A
    model it cannot convert is a one-line QuailError with the converter's own reason."""
    command = [sys.executable, str(converter_script(progress)), str(model_dir)]
    command += ["--outfile", str(out), "--outtype", outtype]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter's own gguf-py, not the installed gguf
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        for line in process.stdout:
            tail.append(line.rstrip())
            progress(line.rstrip())
    if process.returncode != 0:
        raise QuailError(f"llama.cpp's converter cannot convert {model_dir}: {_reason(tail)}")


def _reason(lines) -> str:
    """The converter's last error line: its ERROR log or the exception that stopped it."""
    lines = [line for line in lines if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR:") or "Error:" in line.split(" ", 1)[0]:
            return line.split(":", 2)[-1].strip() if line.startswith("ERROR:") else line
    return lines[-1] if lines else "it stopped without a message"
