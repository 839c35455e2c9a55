"""Examples to token batches, and the deterministic order in which training visits them.

The order is a pure function of (seed, step), so a resumed run sees the same batches as an
uninterrupted one without saving any data-loader state.
"""

from dataclasses import dataclass

import torch

from quail.data.examples import Example
from quail.errors import QuailError

IGNORE = -100  # the label of tokens that carry no loss (Hugging Face's convention)


@dataclass
class Encoded:
    """One example: token ids and which of them are target tokens (the ones that carry loss)."""

    ids: list[int]
    is_target: list[bool]
    prompted: bool = False  # a prompt and its answer, not a passage


@dataclass
class Batch:
    """Right-padded ids; `labels` is -100 off target; `index` names the examples (cache keys);
    `prompted` says which rows are a prompt and its answer."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    prompted: torch.Tensor

    def to(self, device) -> "Batch":
        move = (self.input_ids, self.attention_mask, self.labels)
        return Batch(*(t.to(device) for t in move), self.index, self.prompted.to(device))


def encode(examples: list[Example], tokenizer, max_length: int, name: str) -> list[Encoded]:
    """Tokenize prompt + target together and mark target tokens by character offsets.

    Tokenizing the joined text (not the two halves) gives the ids the model sees at inference;
    a token that straddles the prompt/target boundary counts as target. Too-long examples lose
    tokens from the left, so the target survives.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise QuailError("the tokenizer must be a fast (Rust) tokenizer: offsets are needed")
    encoded = []
    for i, ex in enumerate(examples):
        enc = tokenizer(ex.prompt + ex.target, return_offsets_mapping=True)
        start = len(ex.prompt)
        is_target = [end > start and end > s for s, end in enc["offset_mapping"]]
        ids = enc["input_ids"][-max_length:]
        is_target = is_target[-max_length:]
        if not any(is_target[1:]):
            raise QuailError(
                f"{name} example {i} has no target tokens to train on (target {ex.target!r})"
            )
        encoded.append(Encoded(ids, is_target, ex.prompted))
    return encoded


def collate(encoded: list[Encoded], index: list[int], pad_id: int) -> Batch:
    """Right-pad the chosen examples into one batch."""
    rows = [encoded[i] for i in index]
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for j, row in enumerate(rows):
        n = len(row.ids)
        ids[j, :n] = torch.tensor(row.ids)
        mask[j, :n] = 1
        labels[j, :n] = torch.where(torch.tensor(row.is_target), ids[j, :n], IGNORE)
    prompted = torch.tensor([r.prompted for r in rows])
    return Batch(ids, mask, labels, torch.tensor(index), prompted)


def stream_indices(n: int, seed: int, start: int, count: int) -> list[int]:
    """Items [start, start + count) of an endless stream of seeded permutations of range(n)."""
    out: list[int] = []
    while len(out) < count:
        epoch, pos = divmod(start + len(out), n)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        out += torch.randperm(n, generator=gen)[pos : pos + count - len(out)].tolist()
    return out


def chunks(n: int, size: int) -> list[list[int]]:
    """range(n) in order, in lists of `size` (for one pass over a set)."""
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
