"""A GGUF file run inside llama.cpp, answering what quail's metrics ask of a model.

`quail.evaluation.lm` asks a model two things: greedy continuations of prompts and the
log-probability of every token of a text. `GgufModel` answers both with llama.cpp's forward
pass on the file (llama_cpp.Llama), on the token ids of the model's own Hugging Face tokenizer,
so the prompts, the answers' decoding and the scorer are those of every other spec; only the
arithmetic is llama.cpp's. Each call re-uses the key/value cache of the tokens it shares with
the previous one (the few-shot prefix of QA prompts).
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from quail.errors import QuailError
from quail.gguf.converted import f32_file
from quail.gguf.llamacpp import llama_cpp, llama_log, quantize_file
from quail.gguf.types import gguf_type

MAX_CONTEXT = 2048  # llama.cpp keeps n_ctx × vocabulary logits; longer texts are refused


class GgufModel:
    """A GGUF file opened in llama.cpp (CPU), with the two calls quail's metrics make."""

    def __init__(self, path: str | Path, n_ctx: int | None = None):
        lib = llama_cpp()
        self.path = Path(path)
        with llama_log(lambda line: None):  # llama.cpp's load report is not the user's business
            if n_ctx is None:
                meta = lib.Llama(str(path), n_ctx=8, vocab_only=True, verbose=False).metadata
                trained = meta.get(f"{meta.get('general.architecture')}.context_length")
                n_ctx = min(int(trained or MAX_CONTEXT), MAX_CONTEXT)
            self.llm = lib.Llama(
                str(path),
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=n_ctx,
                logits_all=True,
                n_threads=os.cpu_count() or 1,
                verbose=False,
            )
        self.eos = self.llm.token_eos()

    def eval(self):  # evaluate_model switches models to eval mode; this one has no other mode
        return self

    def logits(self, tokens: list[int]) -> np.ndarray:
        """llama.cpp's float32 logits at every position of `tokens` (len × vocabulary)."""
        self._run(tokens)
        return np.array(self.llm.scores[: len(tokens)], dtype=np.float32)

    def _run(self, tokens: list[int]) -> None:
        """Bring llama.cpp's state to `tokens`, computing only what differs from the last."""
        if len(tokens) > self.llm.n_ctx():
            raise QuailError(
                f"a text of {len(tokens)} tokens is longer than the {self.llm.n_ctx()} tokens "
                f"quail runs {self.path.name} with: shorten the passages"
            )
        shared = 0
        for old, new in zip(self.llm.input_ids[: self.llm.n_tokens], tokens[:-1], strict=False):
            if old != new:
                break
            shared += 1
        self.llm.n_tokens = shared  # eval() drops the cache beyond this point
        self.llm.eval(tokens[shared:])

    def greedy_continuations(
        self, tokenizer, prompts: list[str], max_new_tokens, first_line_only: bool
    ) -> list[str]:
        """Greedy decoding (argmax), stopping at end of text, at `max_new_tokens` (an int or
        one per prompt) or, with `first_line_only`, once the first line is complete."""
        if isinstance(max_new_tokens, int):
            max_new_tokens = [max_new_tokens] * len(prompts)
        stops = {self.eos, tokenizer.eos_token_id} - {None}
        outputs = []
        for tokens, length in zip(tokenizer(prompts)["input_ids"], max_new_tokens, strict=True):
            tokens, new = list(tokens), []
            while len(new) < length:
                self._run(tokens)
                token = int(np.argmax(self.llm.scores[len(tokens) - 1]))
                if token in stops:
                    break
                new.append(token)
                tokens.append(token)
                text = tokenizer.decode(new, skip_special_tokens=True)
                if first_line_only and "\n" in text.lstrip():
                    break
            outputs.append(tokenizer.decode(new, skip_special_tokens=True))
        return outputs

    def next_token_logprobs(self, tokens: list[int]) -> torch.Tensor:
        """The log-probabilities of the whole vocabulary predicting tokens 1..n−1 of `tokens`."""
        return torch.log_softmax(torch.from_numpy(self.logits(list(tokens))[:-1]), -1)

    def token_logprobs(self, tokenizer, texts: list[str]) -> list[torch.Tensor]:
        """Log-probability of every token given the ones before it (the first left out)."""
        results = []
        for tokens in tokenizer(texts)["input_ids"] if texts else []:
            targets = torch.tensor(tokens[1:])
            results.append(self.next_token_logprobs(tokens).gather(-1, targets[:, None])[:, 0])
        return results

    def close(self) -> None:
        self.llm.close()


def export_and_load(model, tokenizer, type_name: str, log=lambda line: None) -> GgufModel:
    """An in-memory model (and its tokenizer) written as a GGUF file of `type_name` by
    llama.cpp's converter (once per model: quail.gguf.converted) and quantizer, opened in
    llama.cpp. The quantized file lives in a temporary folder that is gone once llama.cpp has
    opened it."""
    kind = gguf_type(type_name)
    llama_cpp()  # a missing build is one line, before any work
    f32 = f32_file(model, tokenizer, log)
    if kind.name == "F32":
        return GgufModel(f32)
    tmp = Path(tempfile.mkdtemp(prefix="quail-gguf-"))
    try:
        quantize_file(f32, tmp / f"model-{kind.name}.gguf", kind.ftype)
        return GgufModel(tmp / f"model-{kind.name}.gguf")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
