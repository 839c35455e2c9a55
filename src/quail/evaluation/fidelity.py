"""What quantization did to a model's predictions, measured as llama.cpp's perplexity tool
measures it with --kl-divergence: the quantized model against the same model at full
precision, position by position on the same tokens.

| name | what |
|---|---|
| `kld_{set}` | mean over positions of KL(P_fp ‖ P_q), the next-token distributions, in nats |
| `top1_{set}` | fraction of positions where both models' most likely next token is the same |
| `ppl_ratio_{set}` | PPL_q / PPL_fp = exp(mean(NLL_q − NLL_fp)) on the text's own tokens |

Sets: the retain passages (`retain`) and the held-out general text (`general`), each cut to its
first TOKENS tokens (texts in order, each at most the model's context), so the fp model's
distributions, computed once per model and reused for every spec, are TOKENS × vocabulary
floats per set.
"""

from functools import cached_property

import torch

from quail.errors import QuailError
from quail.evaluation.lm import next_token_logprobs

SETS = {"retain": "retain", "general": "heldout_general"}  # metric suffix: EvalData.passages key
TOKENS = 512


class Reference:
    """The fp model's next-token log-probabilities on the token lists the metrics score,
    computed on first use: make one per model and pass it to every call that evaluates it
    (an evaluation at fp alone never computes them)."""

    def __init__(self, model, tokens: dict[str, list[list[int]]]):
        self.model, self.tokens = model, tokens  # set suffix: token lists

    @cached_property
    def logprobs(self) -> dict[str, list[torch.Tensor]]:  # (len − 1, vocabulary) per list
        return {
            suffix: [next_token_logprobs(self.model, t) for t in lists]
            for suffix, lists in self.tokens.items()
        }


def token_sets(tokenizer, passages: dict, max_tokens: int, context: int) -> dict:
    """{suffix: token lists}: each set's texts in order, each cut to `context`, until
    `max_tokens` tokens; sets without text are left out."""
    sets = {}
    for suffix, key in SETS.items():
        texts, budget, lists = passages.get(key) or [], max_tokens, []
        for tokens in tokenizer(texts)["input_ids"] if texts else []:
            tokens = list(tokens)[: min(context, budget)]
            if len(tokens) >= 2:
                lists.append(tokens)
                budget -= len(tokens)
            if budget < 2:
                break
        if lists:
            sets[suffix] = lists
    return sets


def fp_reference(model, tokenizer, data, max_tokens: int = TOKENS) -> Reference:
    """The reference every spec of `model` is measured against: `model` itself, unquantized."""
    context = getattr(model.config, "max_position_embeddings", None) or max_tokens
    return Reference(model, token_sets(tokenizer, data.passages, max_tokens, context))


def fidelity(model, reference: Reference) -> dict[str, float]:
    """`kld_*`, `top1_*` and `ppl_ratio_*` of `model` (a quantized copy, a GGUF file in
    llama.cpp) against `reference`, per set."""
    scores = {}
    for suffix, lists in reference.tokens.items():
        kl, same, gap, positions = 0.0, 0, 0.0, 0
        for tokens, fp in zip(lists, reference.logprobs[suffix], strict=True):
            quantized = next_token_logprobs(model, tokens)
            if quantized.shape != fp.shape:
                raise QuailError(
                    f"the quantized model predicts {quantized.shape[-1]} tokens where the fp "
                    f"model predicts {fp.shape[-1]}: compare models with one vocabulary"
                )
            p = fp.double().exp()
            terms = torch.where(p > 0, p * (fp.double() - quantized.double()), 0.0)
            kl += terms.sum().item()
            same += int((fp.argmax(-1) == quantized.argmax(-1)).sum())
            targets = torch.tensor(tokens[1:])[:, None]
            gap += (fp.gather(-1, targets) - quantized.gather(-1, targets)).double().sum().item()
            positions += len(tokens) - 1
        scores[f"kld_{suffix}"] = kl / positions
        scores[f"top1_{suffix}"] = same / positions
        mean_gap = torch.tensor(gap / positions, dtype=torch.float64)
        scores[f"ppl_ratio_{suffix}"] = mean_gap.exp().item()  # inf, not an OverflowError
    return scores
