"""What the metrics ask of a causal LM: greedy continuations and per-token log-probabilities."""

import torch


def _ensure_pad(tokenizer) -> None:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


@torch.no_grad()
def greedy_continuations(
    model, tokenizer, prompts: list[str], max_new_tokens: int | list[int] = 16, batch_size=32
) -> list[str]:
    """Greedy decoding of each prompt, batched with left padding; returns only the new text.
    `max_new_tokens` may be given per prompt."""
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
            generated = model.generate(
                **batch,
                max_new_tokens=max(lengths),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs += [
                tokenizer.decode(tokens[:length], skip_special_tokens=True)
                for tokens, length in zip(new_tokens, lengths, strict=True)
            ]
    finally:
        tokenizer.padding_side = side
    return outputs


@torch.no_grad()
def token_logprobs(model, tokenizer, texts: list[str], batch_size: int = 16) -> list[torch.Tensor]:
    """For each text, the log-probability of every token given the ones before it (the first
    token, having no context, is left out)."""
    _ensure_pad(tokenizer)
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    results = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True)
            batch = batch.to(model.device)
            logits = model(**batch).logits[:, :-1].float()
            targets = batch["input_ids"][:, 1:]
            logprobs = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
            for row, mask in zip(logprobs, batch["attention_mask"][:, 1:].bool(), strict=True):
                results.append(row[mask].cpu())
    finally:
        tokenizer.padding_side = side
    return results
