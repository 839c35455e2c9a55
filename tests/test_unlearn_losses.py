"""Each loss against a hand computation on a tiny batch."""

import math

import pytest
import torch

from quail.unlearning import losses


def test_nll_and_ga_match_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    targets = torch.tensor([0, 1])
    by_hand = (
        -(math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(math.e / (1 + math.e + math.exp(3))))
        / 2
    )
    assert losses.nll(logits, targets).item() == pytest.approx(by_hand, rel=1e-6)
    assert losses.ga_loss(logits, targets).item() == pytest.approx(-by_hand, rel=1e-6)


def test_sequence_logprob_sums_tokens_per_example():
    logits = torch.randn(5, 7)
    targets = torch.tensor([1, 2, 3, 4, 5])
    seq = torch.tensor([0, 0, 1, 1, 1])
    token = torch.log_softmax(logits, -1)[torch.arange(5), targets]
    got = losses.sequence_logprob(logits, targets, seq, 2)
    assert torch.allclose(got, torch.stack([token[:2].sum(), token[2:].sum()]))


def test_npo_matches_closed_form_and_its_gradient():
    seq = torch.tensor([-3.0, -1.0, -6.0], requires_grad=True)
    ref = torch.tensor([-2.0, -2.0, -2.0])
    beta = 0.5
    ratio = (seq - ref).detach()
    closed = (2 / beta) * torch.log1p(torch.exp(beta * ratio)).mean()
    loss = losses.npo_loss(seq, ref, beta)
    assert loss.item() == pytest.approx(closed.item(), rel=1e-6)
    loss.backward()
    # d/d log π = (2/n) σ(β·ratio): GA's gradient, damped once the answer is unlikely
    assert torch.allclose(seq.grad, 2 / 3 * torch.sigmoid(beta * ratio))
    # at the start (π = π_ref) the loss is (2/β) log 2
    start = losses.npo_loss(ref, ref, beta)
    assert start.item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)


def test_kl_full_matches_hand_and_is_zero_on_equal_models():
    ref_logits = torch.tensor([[1.0, 0.0, -1.0]])
    logits = torch.tensor([[0.0, 0.5, 0.0]])
    p = torch.softmax(ref_logits, -1)
    q = torch.softmax(logits, -1)
    by_hand = (p * (p / q).log()).sum().item()
    ref_lp = torch.log_softmax(ref_logits, -1)
    assert losses.kl_full(ref_lp, logits).item() == pytest.approx(by_hand, rel=1e-5)
    assert losses.kl_full(ref_lp, ref_logits).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_topk_is_full_kl_with_all_tokens_and_a_lower_bound_with_fewer():
    torch.manual_seed(0)
    ref_logits, logits = torch.randn(4, 10), torch.randn(4, 10)
    ref_lp = torch.log_softmax(ref_logits, -1)
    full = losses.kl_full(ref_lp, logits)
    values, index = ref_lp.topk(10, -1)
    assert losses.kl_topk(values, index, logits).item() == pytest.approx(full.item(), rel=1e-4)
    values, index = ref_lp.topk(3, -1)
    coarse = losses.kl_topk(values, index, logits)
    assert 0 < coarse.item() <= full.item()
    assert losses.kl_topk(values, index, ref_logits).item() == pytest.approx(0.0, abs=1e-6)


def test_target_logprob_drop_is_the_hinges_distance_by_hand():
    z0 = torch.tensor([[2.0, 0.0, 0.0]])
    z = torch.tensor([[0.0, 0.0, 0.0]])
    targets = torch.tensor([0])
    drop = math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(1 / 3)
    got = losses.target_logprob(z0, targets) - losses.target_logprob(z, targets)
    assert got.item() == pytest.approx(drop)


def test_hinge_zero_when_margin_holds_positive_otherwise():
    d = torch.tensor([0.5, 2.0, 3.0])
    assert losses.hinge_loss(d, 0.5).item() == 0.0
    assert losses.hinge_loss(d, 2.5).item() == pytest.approx((2.0 + 0.5 + 0.0) / 3)


def test_hinge_gradient_lowers_the_answers_log_probability():
    torch.manual_seed(1)
    z0 = torch.randn(3, 8)
    targets = torch.tensor([1, 2, 3])
    z = (z0 + 0.01 * torch.randn(3, 8)).requires_grad_()

    def drop(logits):
        return losses.target_logprob(z0, targets) - losses.target_logprob(logits, targets)

    before = drop(z).detach()
    loss = losses.hinge_loss(drop(z), margin=1.0)
    assert loss.item() > 0
    loss.backward()
    with torch.no_grad():
        after = drop(z - 0.01 * z.grad)
    assert (after > before).all()


def test_the_odds_hinge_pushes_an_answer_only_while_it_is_likelier_than_its_margin_allows():
    """p > σ(−m): pushed down (and the rest up); p ≤ σ(−m): left alone."""
    margin = 1.0
    logits = torch.tensor([[3.0, 0.0, 0.0], [-3.0, 0.0, 0.0]], requires_grad=True)
    targets = torch.tensor([0, 0])
    losses.odds_hinge(logits, targets, margin).backward()
    likely, unlikely = logits.grad
    assert likely[0] > 0 and (likely[1:] < 0).all()  # descent lowers the answer's logit
    assert torch.equal(unlikely, torch.zeros(3))
    p = torch.softmax(logits.detach(), -1)[:, 0]
    assert p[0] > 1 / (1 + math.e**margin) > p[1]
    log_odds = math.log(p[0] / (1 - p[0]))
    by_hand = (log_odds + margin) / 2  # the mean over both tokens, the second at 0
    assert losses.odds_hinge(logits.detach(), targets, margin).item() == pytest.approx(by_hand)
