"""The tiny Llama the CPU tests build from config (random weights, nothing downloaded)."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

DEFAULTS = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


def tiny_llama(seed: int = 0, **overrides) -> LlamaForCausalLM:
    """A Llama of hidden size 64 in eval mode, weights drawn after `torch.manual_seed(seed)`;
    `overrides` change any LlamaConfig field (layers, heads, vocabulary, tied embeddings)."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**{**DEFAULTS, **overrides})).eval()
