"""Examples to token tensors: loss on the target (and a closing EOS), never on the prompt."""

import torch

from quail.data.examples import Example

IGNORE = -100


def encode(tokenizer, example: Example, eos: bool = True) -> tuple[list[int], list[int]]:
    """(input ids, labels); the prompt carries BOS, labels mask it out as the Example promises."""
    prompt = tokenizer(example.prompt)["input_ids"]
    target = tokenizer(example.target, add_special_tokens=False)["input_ids"]
    if eos:
        target = target + [tokenizer.eos_token_id]
    return prompt + target, [IGNORE] * len(prompt) + target


def collate(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked from attention and from the loss."""
    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for i, (x, y) in enumerate(pairs):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
