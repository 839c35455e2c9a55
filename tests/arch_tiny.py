"""Tiny random models of the common decoder architectures, built from config (nothing
downloaded), that have learned unlearn_tiny's facts and sit on an int4 grid.

Each is 2 layers of hidden size 64 with unlearn_tiny's word-level vocabulary; all but GPT-NeoX
(which has no key/value heads of its own) use grouped-query attention (2 key/value heads for 4
query heads); Qwen2 and the Gemmas tie their embeddings, the others do not. The sliding windows
are shorter than a fact, so the sliding-attention layers really slide.
"""

import functools
from dataclasses import dataclass, field

import torch
import transformers
from torch import nn

import tiny
import unlearn_tiny
from quail.data.batches import collate, encode
from quail.data.examples import Example
from quail.quant import parse_spec, quantized_weights, snap_onto, ste_weights
from quail.unlearning.forward import forward
from quail.unlearning.losses import nll

GRID = "rtn-int4-g32"  # symmetric, so a model on it is a fixed point of quantizing exactly

COMMON = {
    **tiny.DEFAULTS,  # the tiny Llama's sizes, grouped-query attention included
    "vocab_size": len(unlearn_tiny.WORDS),
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
SLIDING = {"sliding_window": 4}
GEMMA = {"head_dim": 16, "query_pre_attn_scalar": 16, **SLIDING}


@dataclass(frozen=True)
class Arch:
    model: str  # the transformers class
    config: str  # its config class
    tied: bool
    overrides: dict = field(default_factory=dict)
    lora_targets: tuple[str, ...] | None = None  # None: quail's default (q, k, v, o_proj)

    @property
    def gqa(self) -> bool:
        return "num_key_value_heads" not in self.overrides


ARCHS = {
    "llama": Arch("LlamaForCausalLM", "LlamaConfig", tied=False),
    "qwen2": Arch("Qwen2ForCausalLM", "Qwen2Config", tied=True),
    "qwen3": Arch("Qwen3ForCausalLM", "Qwen3Config", tied=False, overrides={"head_dim": 16}),
    "mistral": Arch("MistralForCausalLM", "MistralConfig", tied=False, overrides=SLIDING),
    "gemma2": Arch("Gemma2ForCausalLM", "Gemma2Config", tied=True, overrides=GEMMA),
    "gemma3": Arch(
        "Gemma3ForCausalLM",
        "Gemma3TextConfig",
        tied=True,
        overrides={**GEMMA, "layer_types": ["sliding_attention", "full_attention"]},
    ),
    "phi3": Arch("Phi3ForCausalLM", "Phi3Config", tied=False, lora_targets=("qkv_proj", "o_proj")),
    "olmo2": Arch("Olmo2ForCausalLM", "Olmo2Config", tied=False),
    "gpt_neox": Arch(
        "GPTNeoXForCausalLM",
        "GPTNeoXConfig",
        tied=False,
        overrides={"num_key_value_heads": None},
        lora_targets=("query_key_value", "dense"),
    ),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """A random model of the architecture, in eval mode."""
    arch = ARCHS[name]
    settings = {**COMMON, "tie_word_embeddings": arch.tied, **arch.overrides}
    config = getattr(transformers, arch.config)(
        **{k: v for k, v in settings.items() if v is not None}
    )
    torch.manual_seed(seed)
    return getattr(transformers, arch.model)(config).eval()


def facts() -> list[Example]:
    """unlearn_tiny's facts, each answer closed by <eos> so greedy answers stop at the fact."""
    return [Example(e.prompt, e.target + " <eos>") for e in unlearn_tiny.facts()]


def split() -> tuple[list[Example], list[Example]]:
    """Forget the first two people's facts; retain the next four people's (few, to stay fast)."""
    everything = facts()
    return everything[:4], everything[4:12]


def probes() -> tuple[list[Example], list[Example]]:
    """The forget and retain questions with their bare answers, as evaluation scores them."""
    everything = unlearn_tiny.facts()
    return everything[:4], everything[4:12]


@functools.cache
def _trained_state(name: str) -> dict:
    model, tok = build(name).train(), unlearn_tiny.tokenizer()
    encoded = encode(facts(), tok, 32, "facts")
    batch = collate(encoded, list(range(len(encoded))), tok.pad_token_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    _fit(model, batch, optimizer, 50)
    for group in optimizer.param_groups:
        group["lr"] = 2e-3
    parts = quantized_weights(model, model, parse_spec(GRID))
    _fit(model, batch, optimizer, 15, parts)  # then through the grid, and left on it
    snap_onto(model, parse_spec(GRID))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fit(model, batch, optimizer, steps: int, parts: dict | None = None) -> None:
    for _ in range(steps):
        out = forward(model, batch, ste_weights(model, parts) if parts else None)
        loss = nll(out.logits, out.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def trained(name: str) -> nn.Module:
    """A fresh copy of the architecture's model that knows every fact, snapped onto GRID."""
    model = build(name)
    model.load_state_dict(_trained_state(name))
    return model.eval()


@torch.no_grad()
def mean_nll(model: nn.Module, examples: list[Example]) -> float:
    tok = unlearn_tiny.tokenizer()
    encoded = encode(examples, tok, 32, "eval")
    out = forward(model, collate(encoded, list(range(len(encoded))), tok.pad_token_id))
    return nll(out.logits, out.targets).item()
