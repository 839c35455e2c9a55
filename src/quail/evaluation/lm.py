"""What the metrics ask of a causal LM: greedy continuations and per-token log-probabilities."""

import copy
import inspect

import torch
from transformers import DynamicCache, GenerationMixin, StoppingCriteria, StoppingCriteriaList


def _ensure_pad(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


class FirstLineComplete(StoppingCriteria):
    """Stops a row once its new text holds a newline after its leading whitespace: from then
    on the answer's first line (`metrics.first_line`, all a short answer is scored on) is fixed,
    and the tokens after it would only be thrown away."""

    def __init__(self, tokenizer, prompt_length: int):
        self.tokenizer, self.prompt_length = tokenizer, prompt_length

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(
            input_ids[:, self.prompt_length :], skip_special_tokens=True
        )
        return torch.tensor([("\n" in t.lstrip()) for t in texts], device=input_ids.device)


# transformers 5 is renaming the key/value cache argument of `forward` and `generate` from
# `past_key_values` to `cache` (the old name warns where the new one exists)
CACHE_ARGUMENT = (
    "cache"
    if "cache" in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    else "past_key_values"
)


def shared_prefix_length(token_lists: list[list[int]]) -> int:
    """How many leading tokens all prompts share, leaving each at least one of its own."""
    if not token_lists:
        return 0
    limit = min(len(tokens) for tokens in token_lists) - 1
    first = token_lists[0]
    length = 0
    while length < limit and all(tokens[length] == first[length] for tokens in token_lists):
        length += 1
    return length


def _rows_after_prefix(token_lists, shared: int, pad_id: int):
    """Token ids and attention mask of rows laid out as [shared prefix, padding, own tokens]:
    left padding of what follows the prefix, so every row ends at its last prompt token."""
    ids = torch.full((len(token_lists), max(len(tokens) for tokens in token_lists)), pad_id)
    mask = torch.zeros_like(ids)
    for row, tokens in enumerate(token_lists):
        own_start = ids.shape[1] - (len(tokens) - shared)
        ids[row, :shared] = torch.tensor(tokens[:shared], dtype=ids.dtype)
        ids[row, own_start:] = torch.tensor(tokens[shared:], dtype=ids.dtype)
        mask[row, :shared] = mask[row, own_start:] = 1
    return ids, mask


@torch.no_grad()
def greedy_continuations(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int | list[int] = 16,
    batch_size=32,
    first_line_only: bool = False,
) -> list[str]:
    """Greedy decoding of each prompt, batched; returns only the new text. `max_new_tokens` may
    be given per prompt. With `first_line_only`, a row stops once its first line is complete
    (the text after that newline is cut short, not scored).

    The tokens every prompt starts with (a QA template's few-shot examples: most of each
    prompt) run once, and their key/value cache is shared by every row, which is laid out as
    [prefix, padding, own tokens] (positions follow the attention mask, so the padding is
    skipped): the answers of plain left padding at a fraction of the cost (not on models with
    a sliding window, which get plain left padding).

    A model that is not a PyTorch model (a GGUF file in llama.cpp, quail.gguf.runtime) answers
    with its own `greedy_continuations`."""
    if not prompts:
        return []
    if hasattr(model, "greedy_continuations"):
        return model.greedy_continuations(tokenizer, prompts, max_new_tokens, first_line_only)
    _ensure_pad(tokenizer)
    if isinstance(max_new_tokens, int):
        max_new_tokens = [max_new_tokens] * len(prompts)
    token_lists = tokenizer(prompts)["input_ids"]
    shared = 0 if _slides(model.config) else shared_prefix_length(token_lists)
    prefix_cache = None
    if shared:
        prefix_cache = DynamicCache(config=model.config)
        prefix = torch.tensor([token_lists[0][:shared]], device=model.device)
        model(input_ids=prefix, use_cache=True, **{CACHE_ARGUMENT: prefix_cache})
    outputs = []
    for start in range(0, len(prompts), batch_size):
        rows = token_lists[start : start + batch_size]
        lengths = max_new_tokens[start : start + batch_size]
        ids, mask = _rows_after_prefix(rows, shared, tokenizer.pad_token_id)
        ids, mask = ids.to(model.device), mask.to(model.device)
        cache = {}
        if prefix_cache is not None:
            cache[CACHE_ARGUMENT] = copy.deepcopy(prefix_cache)
            cache[CACHE_ARGUMENT].batch_repeat_interleave(len(rows))
        stop = [FirstLineComplete(tokenizer, ids.shape[1])] if first_line_only else []
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(lengths),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList(stop),
            **cache,
        )
        new_tokens = generated[:, ids.shape[1] :]
        outputs += [
            tokenizer.decode(tokens[:length], skip_special_tokens=True)
            for tokens, length in zip(new_tokens, lengths, strict=True)
        ]
    return outputs


def _slides(config) -> bool:
    """Whether some layer attends through a sliding window (Mistral, Gemma2/3): the window
    counts cache slots, padding included, so a shared prefix would slide out of it behind a
    row's padding; such models get plain left padding."""
    types = getattr(config, "layer_types", None)
    if types is not None:
        return "sliding_attention" in types
    return bool(getattr(config, "sliding_window", None)) and getattr(
        config, "use_sliding_window", True
    )


def length_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices in order of length, cut into batches of at most `max_tokens` once padded to
    their longest (a text longer than that goes alone)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def token_logprobs(model, tokenizer, texts: list[str], max_tokens: int = 512) -> list[torch.Tensor]:
    """For each text, the log-probability of every token given the ones before it (the first
    token, having no context, is left out). Texts are batched in order of length, so that
    little of each batch is padding (half the time of batches in the given order, here). A
    model with its own `token_logprobs` (a GGUF file in llama.cpp) answers itself."""
    if hasattr(model, "token_logprobs"):
        return model.token_logprobs(tokenizer, texts)
    _ensure_pad(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    token_lists = tokenizer(texts)["input_ids"] if texts else []
    results: list[torch.Tensor | None] = [None] * len(texts)
    try:
        for rows in length_batches([len(tokens) for tokens in token_lists], max_tokens):
            batch = {"input_ids": [token_lists[i] for i in rows]}
            batch = tokenizer.pad(batch, return_tensors="pt").to(model.device)
            logits = model(**batch).logits[:, :-1].float()
            targets = batch["input_ids"][:, 1:]
            logprobs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
            masks = batch["attention_mask"][:, 1:].bool()
            for i, row, mask in zip(rows, logprobs, masks, strict=True):
                results[i] = row[mask].cpu()
    finally:
        tokenizer.padding_side = side
    return results


@torch.no_grad()
def next_token_logprobs(model, tokens: list[int]) -> torch.Tensor:
    """The log-probabilities of the whole vocabulary at every position of `tokens` but the
    last (the distributions that predict tokens 1..n−1), float32 on the CPU. A model with its
    own `next_token_logprobs` (a GGUF file in llama.cpp) answers itself."""
    if hasattr(model, "next_token_logprobs"):
        return model.next_token_logprobs(tokens)
    logits = model(input_ids=torch.tensor([tokens], device=model.device)).logits[0, :-1]
    return torch.log_softmax(logits.float(), -1).cpu()
