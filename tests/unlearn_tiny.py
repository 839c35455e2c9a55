"""A tiny word-level world for the unlearning tests: tokenizer, facts, a Llama that knows them."""

import contextlib
import functools

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from tokenizers.processors import TemplateProcessing
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

import tiny
from quail.data.batches import collate, encode
from quail.data.examples import Example
from quail.quant import fake_quantize, parse_spec, quantized_modules
from quail.unlearning.forward import forward
from quail.unlearning.losses import nll

PEOPLE = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kai", "lu"]
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "delhi", "quito", "riga"]
JOBS = ["baker", "pilot", "nurse", "judge", "smith", "tailor"]
SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
WORDS = SPECIAL + PEOPLE + CITIES + JOBS + ["lives", "in", "works", "as", "a"]


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def facts() -> list[Example]:
    out = []
    for i, person in enumerate(PEOPLE):
        out.append(Example(f"{person} lives in", f" {CITIES[i % len(CITIES)]}"))
        out.append(Example(f"{person} works as a", f" {JOBS[(i * 5) % len(JOBS)]}"))
    return out


def split() -> tuple[list[Example], list[Example]]:
    """Forget the first two people's facts, retain the rest."""
    everything = facts()
    return everything[:4], everything[4:]


def fresh_model(seed: int = 0) -> LlamaForCausalLM:
    model = tiny.tiny_llama(
        seed, vocab_size=len(WORDS), hidden_size=32, intermediate_size=64,
        max_position_embeddings=32,
    )  # fmt: skip
    return model.train()


@functools.lru_cache(maxsize=1)
def _trained_state() -> dict:
    model, tok = fresh_model(), tokenizer()
    encoded = encode(facts(), tok, 32, "facts")
    batch = collate(encoded, list(range(len(encoded))), tok.pad_token_id)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        out = forward(model, batch)
        loss = nll(out.logits, out.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained_model() -> LlamaForCausalLM:
    """A fresh copy of a tiny Llama that has learned every fact (trained once per process)."""
    model = fresh_model()
    model.load_state_dict(_trained_state())
    return model.eval()


GRID = "rtn-int4-g16"


def snapped(spec: str = GRID) -> LlamaForCausalLM:
    """The trained model with every linear weight put on `spec`'s grid (W := Q(W)), as
    SmolLM2's weights sit on its file's."""
    model = trained_model()
    with torch.no_grad():
        for _, module, part in quantized_modules(model, parse_spec(spec)):
            module.weight.copy_(fake_quantize(module.weight, part))
    return model


def measure(model, formats=(GRID,)) -> dict:
    """A measured run's check scores (forget and retain KnowMem) of `model` in `formats`."""
    from quail.unlearning.target import ForgetTarget

    forget, retain = split()
    return ForgetTarget(tokenizer(), forget, retain, list(formats), 0.1, 0.9).measure(model)


@torch.no_grad()
def mean_nll(model, examples: list[Example]) -> float:
    tok = tokenizer()
    encoded = encode(examples, tok, 32, "eval")
    out = forward(model, collate(encoded, list(range(len(encoded))), tok.pad_token_id))
    return nll(out.logits, out.targets).item()


@contextlib.contextmanager
def interrupted_after(monkeypatch, batches: int):
    """Ctrl-C in the middle of a run: the unlearning loop's batch maker raises KeyboardInterrupt
    once it has made `batches` batches (forget and retain count one each); the real one is put
    back on leaving, so the same test can then resume."""
    from quail.unlearning import loop

    real_batch, made = loop._batch, {"n": 0}

    def counting(*args):
        made["n"] += 1
        if made["n"] > batches:
            raise KeyboardInterrupt
        return real_batch(*args)

    monkeypatch.setattr(loop, "_batch", counting)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(loop, "_batch", real_batch)
