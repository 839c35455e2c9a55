"""What the metrics ask of a causal LM: greedy continuations and per-token log-probabilities."""

import torch
from transformers import StoppingCriteria, StoppingCriteriaList


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


@torch.no_grad()
def greedy_continuations(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int | list[int] = 16,
    batch_size=32,
    first_line_only: bool = False,
) -> list[str]:
    """Greedy decoding of each prompt, batched with left padding; returns only the new text.
    `max_new_tokens` may be given per prompt. With `first_line_only`, a row stops once its first
    line is complete (the text after that newline is cut short, not scored)."""
    _ensure_pad(tokenizer)
    if isinstance(max_new_tokens, int):
        max_new_tokens = [max_new_tokens] * len(prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    outputs = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            lengths = max_new_tokens[start : start + batch_size]
            batch = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
            prompt_length = batch["input_ids"].shape[1]
            stop = [FirstLineComplete(tokenizer, prompt_length)] if first_line_only else []
            generated = model.generate(
                **batch,
                max_new_tokens=max(lengths),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList(stop),
            )
            new_tokens = generated[:, prompt_length:]
            outputs += [
                tokenizer.decode(tokens[:length], skip_special_tokens=True)
                for tokens, length in zip(new_tokens, lengths, strict=True)
            ]
    finally:
        tokenizer.padding_side = side
    return outputs


@torch.no_grad()
def token_logprobs(model, tokenizer, texts: list[str], batch_size: int = 4) -> list[torch.Tensor]:
    """For each text, the log-probability of every token given the ones before it (the first
    token, having no context, is left out). Texts are batched in order of length, so that
    little of each batch is padding (half the time of batches in the given order, here)."""
    _ensure_pad(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]] if texts else []
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    results: list[torch.Tensor | None] = [None] * len(texts)
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer([texts[i] for i in rows], return_tensors="pt", padding=True)
            batch = batch.to(model.device)
            logits = model(**batch).logits[:, :-1].float()
            targets = batch["input_ids"][:, 1:]
            logprobs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
            masks = batch["attention_mask"][:, 1:].bool()
            for i, row, mask in zip(rows, logprobs, masks, strict=True):
                results[i] = row[mask].cpu()
    finally:
        tokenizer.padding_side = side
    return results
