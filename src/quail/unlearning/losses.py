"""Unlearning losses as small functions on target-position tensors.

Every function takes tensors already gathered at the positions that predict target tokens:
`logits` is (N, V) for the N target tokens of a batch, `targets` is (N,), and `seq` (N,) says
which example of the batch each token belongs to. Methods (methods.py) combine these.
"""

import torch
import torch.nn.functional as F


def nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the target tokens."""
    return F.cross_entropy(logits.float(), targets)


def target_logprob(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per token, shape (N,)."""
    return -F.cross_entropy(logits.float(), targets, reduction="none")


def ga_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Gradient ascent: minimising this raises the forget NLL."""
    return -nll(logits, targets)


def sequence_logprob(
    logits: torch.Tensor, targets: torch.Tensor, seq: torch.Tensor, n_seq: int
) -> torch.Tensor:
    """log π(y|x) per example: the sum of its target tokens' log-probabilities, shape (n_seq,)."""
    token_lp = target_logprob(logits, targets)
    return token_lp.new_zeros(n_seq).index_add(0, seq, token_lp)


def npo_loss(seq_logprob: torch.Tensor, ref_seq_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024, eq. 3): -(2/β) E[log σ(-β log(π_θ(y|x) / π_ref(y|x)))].

    On whole-sequence likelihood ratios, not per token or per vocabulary entry. Its gradient is
    GA's reweighted by 2·σ(β·ratio) (so it slows down once the answer is unlikely); β → 0 is GA.
    """
    ratio = seq_logprob - ref_seq_logprob
    return -(2.0 / beta) * F.logsigmoid(-beta * ratio).mean()


def kl_full(ref_logprobs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(π_ref || π_θ) per token on log-softmax, averaged over tokens."""
    logprobs = torch.log_softmax(logits.float(), -1)
    return (ref_logprobs.exp() * (ref_logprobs - logprobs)).sum(-1).mean()


def kl_topk(
    ref_values: torch.Tensor, ref_index: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """KL with the reference kept only on its top-k tokens plus one bucket for the rest.

    It is the exact KL between the two distributions coarsened to (k tokens, "other"), a lower
    bound of the full KL that equals it when the reference puts no mass outside its top k, and
    is 0 when the models agree.
    """
    logprobs = torch.log_softmax(logits.float(), -1).gather(-1, ref_index)
    ref_rest = _log_rest(ref_values)
    rest = _log_rest(logprobs)
    head = (ref_values.exp() * (ref_values - logprobs)).sum(-1)
    return (head + ref_rest.exp() * (ref_rest - rest)).mean()


def _log_rest(topk_logprobs: torch.Tensor) -> torch.Tensor:
    """log(1 - Σ p) of the mass outside the top k, kept finite when the top k holds it all."""
    total = torch.logsumexp(topk_logprobs, -1).clamp(max=-1e-7)
    return torch.log(-torch.expm1(total))


def hinge_loss(dist: torch.Tensor, margin: float) -> torch.Tensor:
    """QUAIL hinge, mean over tokens of relu(m − d): zero once every token is m away. quail_hinge
    takes d = log p0(y) − log p(y), how far the answer token's log-probability fell (signed: the
    one direction that forgets)."""
    return torch.relu(margin - dist).mean()


def odds_hinge(logits: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over tokens of relu(log(p / (1 − p)) + m), p the target token's probability: it
    pushes an answer down only while p > σ(−m), so greedy decoding may still give it, and not
    past that (NPO's push fades by the ratio to the original, GA's never: docs/METHODS.md,
    "The answers' odds")."""
    logp = target_logprob(logits, targets)
    log_odds = logp - torch.log(-torch.expm1(logp.clamp(max=-1e-6)))
    return torch.relu(log_odds + margin).mean()
