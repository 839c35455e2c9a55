"""The weights an analysis compares, from an in-memory model or a safetensors model folder.

Both sources name layers alike (module names, `model.layers.0.mlp.up_proj`), so an in-memory
model can be compared with a folder, and both hand out row-sliceable weights one layer at a
time: a folder is read tensor by tensor, never loaded whole, and pickle files are never read.
"""

import contextlib
import json
import os
import queue
import threading
import weakref
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from quail.errors import QuailError
from quail.models import check_model_dir
from quail.quant import quantizable_modules

INDEX = "model.safetensors.index.json"
READ_AHEAD_BYTES = 256 << 20  # per checkpoint: how far past the layer in hand to read ahead
EMBEDDING_NAMES = ("wte", "wpe")


class ModuleWeights:
    """The weights `quantizable_modules` picks from a model in memory (tied ones once)."""

    def __init__(self, model: nn.Module, include_lm_head: bool, include_embeddings: bool):
        self.label = f"<in-memory {type(model).__name__}>"
        self.selection = "quantizable_modules"
        self.tensors = {}
        seen = set()
        for name, module in quantizable_modules(model, include_lm_head, include_embeddings):
            if id(module.weight) not in seen:
                seen.add(id(module.weight))
                self.tensors[name] = module.weight.detach()
        self.shapes = {name: tuple(w.shape) for name, w in self.tensors.items()}

    @contextlib.contextmanager
    def open(self, name: str):
        yield self.tensors[name]


class FolderWeights:
    """The same weights in a Hugging Face folder, read through `safetensors.safe_open`.

    Layers are chosen by building the model's skeleton on the meta device from config.json
    (no memory, no remote code) and asking `quantizable_modules`; when that fails (unknown
    architecture, custom code, checkpoint keys that do not match the modules) a name rule takes
    over, see `name_rule`.
    """

    def __init__(self, folder, include_lm_head: bool, include_embeddings: bool):
        self.folder = check_model_dir(folder)
        self.label = str(folder)
        files = tensor_files(self.folder)
        layers = skeleton_layers(self.folder, files, include_lm_head, include_embeddings)
        self.selection = "quantizable_modules"
        if layers is None:
            layers = name_rule(files, include_lm_head, include_embeddings)
            self.selection = "name rule"
        self.keys = {name: key for name, key, _ in layers}
        self.shapes = {name: shape for name, _, shape in layers}
        self.files = {name: files[key][0] for name, key, _ in layers}
        self.order = list(self.files)  # layers as analysed, for reading ahead
        spans = {path: data_spans(path) for path in set(self.files.values())}
        self.spans = {name: spans[self.files[name]][self.keys[name]] for name in self.files}
        self.read_ahead = ReadAhead()

    @contextlib.contextmanager
    def open(self, name: str):
        """The layer's safetensors slice (a memory map: rows are read only when indexed). The
        layer's bytes and the next layers', up to READ_AHEAD_BYTES, are read ahead meanwhile, so
        reading overlaps computing."""
        ahead = 0
        for following in self.order[self.order.index(name) :]:
            if ahead >= READ_AHEAD_BYTES:
                break
            start, end = self.spans[following]
            self.read_ahead.span(self.files[following], start, end)
            ahead += end - start
        with safe_open(self.files[name], framework="pt") as handle:
            yield handle.get_slice(self.keys[name])


class ReadAhead:
    """Reads byte ranges of files into the OS page cache from a background thread, each once, in
    the order asked, so that the analysis finds a layer's bytes in memory rather than waiting on
    the disk a page fault at a time. One `POSIX_FADV_WILLNEED` per piece: Linux reads at most
    its readahead window (or the device's optimal I/O size) per call, 128 KB by default, and a
    call for a whole shard read a few MB of it. The calls block while the disk's queue is full,
    hence the thread; a daemon, so that exiting never waits for it. Where the OS has no
    `posix_fadvise`, nothing is read ahead."""

    PIECE = 128 << 10

    def __init__(self) -> None:
        self.requested = set()
        self.requests = None

    def span(self, path: Path, start: int, end: int) -> None:
        if (path, start) in self.requested or not hasattr(os, "posix_fadvise"):
            return
        self.requested.add((path, start))
        if self.requests is None:
            self.requests = queue.SimpleQueue()
            threading.Thread(
                target=advise_will_need,
                args=(self.requests, self.PIECE),
                name="quail-read-ahead",
                daemon=True,
            ).start()
            weakref.finalize(self, self.requests.put, None)  # the thread ends with this object
        self.requests.put((path, start, end))


def advise_will_need(requests: queue.SimpleQueue, piece: int) -> None:
    """The read-ahead thread: each (path, start, end) from `requests`, piece by piece, until
    None."""
    while (request := requests.get()) is not None:
        path, start, end = request
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                for offset in range(start, end, piece):
                    length = min(piece, end - offset)
                    os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        except OSError:
            pass  # a hint only: the analysis then reads these bytes when it needs them


def open_weights(source, include_lm_head: bool, include_embeddings: bool):
    if isinstance(source, nn.Module):
        return ModuleWeights(source, include_lm_head, include_embeddings)
    if isinstance(source, (str, os.PathLike)):
        return FolderWeights(source, include_lm_head, include_embeddings)
    raise QuailError(
        f"cannot analyse a {type(source).__name__}: pass an nn.Module or a model folder path"
    )


def tensor_files(folder: Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Checkpoint key -> (file, shape), from the shard index when there is one, so stray
    safetensors beside the shards (adapters, consolidated copies) are not mixed in."""
    index = folder / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, AttributeError):
            raise QuailError(f"{index} is not a valid shard index: re-save the model") from None
        paths = [folder / name for name in names]
    elif (folder / "model.safetensors").is_file():
        paths = [folder / "model.safetensors"]
    else:
        paths = sorted(folder.glob("*.safetensors"))
    files = {}
    for path in paths:
        if not path.is_file():
            raise QuailError(f"{folder} lacks the shard {path.name} its index names: copy it")
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    files[key] = (path, tuple(handle.get_slice(key).get_shape()))
        except Exception as error:  # safetensors raises its own error types on corrupt files
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise QuailError(f"cannot read {path}: {reason}: re-save the model") from None
    return files


def data_spans(path: Path) -> dict[str, tuple[int, int]]:
    """Where each tensor's bytes lie in a safetensors file: the format is an 8-byte header
    length, a JSON header giving each tensor's `data_offsets`, then the data."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    base = 8 + length
    return {
        key: (base + entry["data_offsets"][0], base + entry["data_offsets"][1])
        for key, entry in header.items()
        if key != "__metadata__"
    }


def skeleton_layers(folder: Path, files: dict, include_lm_head: bool, include_embeddings: bool):
    """[(module name, checkpoint key, shape)] as `quantizable_modules` picks them, or None."""
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception:  # any architecture transformers cannot build offline: use the name rule
        return None
    names_of = {}  # a tied weight is saved under one of its names only
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    layers, seen = [], set()
    for name, module in quantizable_modules(model, include_lm_head, include_embeddings):
        if id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        key = find_key(names_of[id(module.weight)], files)
        if key is None:
            return None
        layers.append((name, key, files[key][1]))
    return layers


def find_key(param_names: list[str], files: dict) -> str | None:
    """The checkpoint key of a parameter: its own name, or one that differs by a leading
    prefix (a base model saved without `model.`, or the other way round)."""
    for name in param_names:
        if name in files:
            return name
    for name in param_names:
        matches = [k for k in files if k.endswith("." + name) or name.endswith("." + k)]
        if len(matches) == 1:
            return matches[0]
    return None


def name_rule(files: dict, include_lm_head: bool, include_embeddings: bool):
    """Every 2-D `*.weight` tensor, minus embeddings (a part of the name containing `embed`,
    or `wte`/`wpe`) and the output layer (`lm_head`) unless they are included."""
    layers = []
    for key, (_, shape) in files.items():
        if not key.endswith(".weight") or len(shape) != 2:
            continue
        parts = key.split(".")[:-1]
        if "lm_head" in parts and not include_lm_head:
            continue
        if any("embed" in p or p in EMBEDDING_NAMES for p in parts) and not include_embeddings:
            continue
        layers.append((key.removesuffix(".weight"), key, shape))
    return layers
