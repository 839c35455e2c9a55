"""Unlearning losses as small functions on target-position tensors.

Every function takes tensors already gathered at the positions that predict target tokens:
`logits` is (N, V) for the N target tokens of a batch, `targets` is (N,), and `seq` (N,) says
which example of the batch each token belongs to. Methods (methods.py) combine these.
"""

import math

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


def margin_loss(logits: torch.Tensor, targets: torch.Tensor, margin: float) -> torch.Tensor:
    """relu(m + z_target − max other z), mean over tokens: zero once the answer token trails
    the model's best other token by `margin` logits, i.e. greedy decoding no longer says it
    (with room to spare for the rounding of other formats). Bounded, unlike gradient ascent, so
    a forgotten token stops pulling the weights."""
    logits = logits.float()
    target = logits.gather(1, targets[:, None])[:, 0]
    others = logits.scatter(1, targets[:, None], float("-inf")).amax(1)
    return torch.relu(margin + target - others).mean()


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


def distance(
    z: torch.Tensor,
    z0: torch.Tensor,
    kind: str,
    center: bool = True,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token distance between two (N, D) tensors, shape (N,).

    With `center` (logits), the difference is first centred over the vocabulary, because the
    softmax ignores a shift of all logits by one constant: a hinge met that way changes nothing.
    `l2` is the root-mean-square of the difference (the L2 norm divided by √D), so a margin
    means the same for a vocabulary of 300 or of 50 000; `linf` the largest absolute entry;
    `mean_abs` the mean absolute entry. `target` is signed and directed: how far the target
    token's log-probability fell, log p0(y) − log p(y), the one direction that forgets.
    """
    if kind == "l2":
        return _RMSDistance.apply(z.float(), z0.float(), center)
    if kind == "target":
        return target_logprob(z0, targets) - target_logprob(z, targets)
    diff = z.float() - z0.float()
    if center:
        diff = diff - diff.mean(-1, keepdim=True)
    if kind == "linf":
        return diff.abs().amax(-1)
    if kind == "mean_abs":
        return diff.abs().mean(-1)
    raise ValueError(f"unknown distance {kind!r}")


class _RMSDistance(torch.autograd.Function):
    """The `l2` distance with a hand-written backward, d/dz = (diff − mean) / (D · dist).

    Autograd's version makes about eight passes over the (N, V) logits; this one makes four
    forward and one backward, which is what keeps QUAIL within 5% of GA+GDR per step
    (benchmarks/step_overhead.py).
    """

    @staticmethod
    def forward(ctx, z, z0, center):
        diff = z - z0
        if center:
            diff.sub_(diff.mean(-1, keepdim=True))
        dist = torch.linalg.vector_norm(diff, dim=-1) / math.sqrt(z.shape[-1])
        ctx.save_for_backward(diff, dist)
        return dist

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        diff, dist = ctx.saved_tensors
        scale = grad / (dist.clamp_min(1e-12) * diff.shape[-1])
        return diff.mul_(scale[:, None]), None, None


def hinge_loss(dist: torch.Tensor, margin: float) -> torch.Tensor:
    """QUAIL hinge, mean over tokens of relu(m − d): zero once every token is m away."""
    return torch.relu(margin - dist).mean()
