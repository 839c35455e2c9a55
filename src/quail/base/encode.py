"""Examples to token ids for the built-in base model: loss on the target and a closing EOS.

Unlike `quail.data.batches.encode` (prompt and target tokenized together, target marked by
character offsets), the prompt and the target are tokenized apart and EOS is appended: the
built-in word-level tokenizer splits at the boundary either way, and the EOS teaches the model
to stop, which `probes.exact_match` checks. Batches are then made by `quail.data.batches.collate`.
"""

from quail.data.batches import Encoded
from quail.data.examples import Example


def encode(tokenizer, example: Example) -> Encoded:
    """The prompt carries BOS and is not a target, as the Example promises."""
    prompt = tokenizer(example.prompt)["input_ids"]
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    target = target + [tokenizer.eos_token_id]
    return Encoded(prompt + target, [False] * len(prompt) + [True] * len(target))
