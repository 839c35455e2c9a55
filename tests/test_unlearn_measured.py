"""Measured stopping with quail's default (sign steps in grid units, shipped rounded onto the
grid), on a tiny Llama whose weights sit on that grid (as SmolLM2's sit on its file's)."""

import copy

import pytest
import torch

import unlearn_tiny as tiny
from quail.data.examples import Example
from quail.errors import QuailError
from quail.quant import parse_spec, quantize_model
from quail.unlearning import unlearn
from quail.unlearning.target import Outcome, probes
from unlearn_tiny import GRID, measure, snapped

SETTINGS = {
    "method": "quail",
    "quant": GRID,
    "lr": 0.03,  # of the grid's median step per step: the tiny facts go in 10-20 steps
    "steps": 30,
    "check_every": 1,
    "batch_size": 4,
    "target": 0.5,  # the tiny world's answers run on past the fact, so ROUGE stays above 0
    "progress": False,
}


def run(model, **config):
    forget, retain = tiny.split()
    return unlearn(model, forget, retain, SETTINGS | config, tokenizer=tiny.tokenizer())


def test_quail_keeps_its_forgetting_in_the_listed_formats_where_adamw_does_not():
    original = snapped()
    formats = (GRID, "nf4")
    start = measure(original, formats)
    result = run(copy.deepcopy(original), quant=",".join(formats))
    assert result.outcome.reason == "target"
    after = measure(result.model, formats)
    for name in ("fp", *formats):
        assert after[name]["forget"] <= 0.5 * start[name]["forget"]
    # the same loss and stopping, moved by AdamW at a small lr: the grid rounds it away
    control = run(copy.deepcopy(original), method="ga_gdr", measure=True, lr=1e-4, steps=10)
    assert control.outcome.reason == "budget"
    assert measure(control.model)[GRID]["forget"] == pytest.approx(start[GRID]["forget"])


def test_the_stop_fires_at_the_first_check_where_the_target_holds_and_not_before():
    result = run(snapped())
    checks, original = result.outcome.checks, result.outcome.original
    held = [
        all(c["scores"][f]["forget"] <= 0.5 * original[f]["forget"] for f in original)
        for c in checks
    ]
    assert held[-1] and not any(held[:-1])
    assert 1 < len(result.curves) == checks[-1]["step"] < 30
    assert result.statement.startswith("stopped: the target")


def test_check_every_spaces_the_checks():
    result = run(snapped(), check_every=3, steps=9)
    steps = [c["step"] for c in result.outcome.checks]
    assert steps[0] == 0 and all(s % 3 == 0 for s in steps)


def test_a_broken_utility_floor_goes_back_to_the_last_check_that_kept_it(monkeypatch):
    from quail.unlearning import loop

    monkeypatch.setattr(loop, "MAX_BACKTRACKS", 0)  # stop where it breaks, no half lr
    # target 0 never holds; a floor of 1.0 breaks as soon as any retain answer changes
    result = run(snapped(), target=0.0, utility_floor=1.0, steps=40)
    outcome = result.outcome
    assert outcome.reason == "utility floor"
    kept = next(c for c in outcome.checks if c["step"] == outcome.step)
    assert measure(result.model) == {k: kept["scores"][k] for k in ("fp", GRID)}
    assert outcome.checks[-1]["step"] > outcome.step  # the check that broke it came later
    assert "retain fell below" in result.statement


def test_the_floor_watches_the_perplexity_of_retain_passages_where_there_are_any():
    """Retain answers can all stay right while general text decays: where the retain set has
    passages, the floor also breaks once the perplexity of those it watches rises above the
    original's / floor."""
    from quail.evaluation.metrics import perplexity
    from quail.unlearning.target import ForgetTarget

    forget, retain = tiny.split()
    texts = [f"{e.prompt}{e.target}" for e in retain[:6]]
    model, tok = snapped(), tiny.tokenizer()
    with_text = ForgetTarget(tok, forget, retain, [GRID], 0.1, 0.8, watched=texts)
    answers_only = ForgetTarget(tok, forget, retain, [GRID], 0.1, 0.8)
    scores = with_text.measure(model)
    assert scores["fp"]["retain_ppl"] == pytest.approx(perplexity(model, tok, texts))
    assert "retain_ppl" not in answers_only.measure(model)["fp"]

    original = {f: {"forget": 50.0, "retain": 90.0, "retain_ppl": 2.0} for f in ("fp", GRID)}
    # retain answers intact in both formats; the grid's passages at 2.4 / 2.6 x 0.8 vs 2.0
    kept = {f: dict(original[f]) for f in original} | {GRID: original[GRID] | {"retain_ppl": 2.4}}
    broke = kept | {GRID: original[GRID] | {"retain_ppl": 2.6}}
    assert not with_text.fluency_lost(kept, original)
    assert with_text.fluency_lost(broke, original)
    assert not with_text.retain_lost(broke, original)
    assert not answers_only.fluency_lost(
        {f: {"forget": 50.0, "retain": 90.0} for f in original},
        {f: {"forget": 50.0, "retain": 90.0} for f in original},
    )
    said = Outcome(reason="budget", step=20, original=original,
                   checks=[{"step": 20, "scores": kept}]).statement(0.1, 0.8)  # fmt: skip
    assert f"{GRID} forget 50.0/50.0 retain 90.0/90.0 perplexity 2.4/2" in said
    assert "watched passages' perplexity at most 1/0.8 x" in said


@pytest.mark.parametrize("short_of", ["fluency_lost", "retain_short"])
def test_a_check_short_of_the_floor_within_its_spread_is_neither_kept_nor_handed_over(
    monkeypatch, short_of
):
    """Watched passages that lost fluency, or retain answers under the floor by less than their
    probes' spread: the run goes on through such checks (going back at half the lr there
    stalled it) but neither stops on one nor hands one over. Here every check is short, so a
    run whose target holds within the budget otherwise goes to the end and hands back step 0."""
    from quail.unlearning import loop

    monkeypatch.setattr(loop.ForgetTarget, short_of, lambda self, scores, original: True)
    original = snapped()
    result = run(copy.deepcopy(original))
    outcome = result.outcome
    assert outcome.reason == "budget" and len(result.curves) == 30 and outcome.step == 0
    assert outcome.passed_over + outcome.backtracks == 30  # no check kept (the retain answers
    # may send the run back at one)
    assert f"{outcome.passed_over} of 30 checks passed over" in result.statement
    assert measure(result.model) == measure(original)


def test_a_retain_dip_within_the_probes_spread_is_short_of_the_floor_but_not_lost():
    """The floor sends a run back only where the retain answers fell below it by more than two
    standard errors of the same probes' differences: a few of 64 probes turning wrong in a
    format whose original sits near its floor is noise, not a loss to halve the lr for."""
    from quail.unlearning.target import ForgetTarget

    forget, retain = tiny.split()
    target = ForgetTarget(tiny.tokenizer(), forget, retain, [GRID], 0.1, 0.85)
    scores = target.measure(snapped())
    per_probe = scores["fp"]["retain_probes"]
    assert len(per_probe) > 1 and sum(per_probe) / len(per_probe) == pytest.approx(
        scores["fp"]["retain"]
    )

    def check(right: int) -> dict:  # `right` of the original's 54 right answers kept
        probes = [100.0] * right + [0.0] * (64 - right)
        return {f: {"retain": sum(probes) / 64, "retain_probes": probes} for f in ("fp", GRID)}

    original = check(54)  # 84.4: its floor is 71.7
    dip, loss = check(44), check(29)  # 68.8 and 45.3
    assert target.retain_short(dip, original) and not target.retain_lost(dip, original)
    assert target.retain_short(loss, original) and target.retain_lost(loss, original)
    assert not target.retain_short(check(50), original)  # 78.1: above the floor


def test_the_watched_passages_are_a_seeded_quarter_of_the_retain_passages_never_trained_on(
    monkeypatch,
):
    """Trained-on passages get easier the whole run, whatever happens to general text: the floor
    watches retain passages the retain term never sees."""
    from quail.unlearning import loop
    from quail.unlearning.target import withhold

    forget, retain = tiny.split()
    passages = [Example("", f"{e.prompt}{e.target}") for e in retain]
    kept, watched = withhold(retain + passages, seed=3)
    assert len(watched) == len(passages) // 4 > 0
    assert set(watched) <= {p.target for p in passages}
    assert len(kept) == len(retain) + len(passages) - len(watched)
    assert not {e.target for e in kept if not e.prompt} & set(watched)
    assert withhold(retain + passages, seed=3)[1] == watched != withhold(retain + passages, 4)[1]
    assert withhold(retain + passages[:3], seed=3) == (retain + passages[:3], [])

    trained, seen = {}, {}
    encode, target = loop.encode, loop.ForgetTarget

    def spy_encode(examples, tokenizer, max_length, kind):
        trained.setdefault(kind, [e.target for e in examples])
        return encode(examples, tokenizer, max_length, kind)

    def spy_target(*args):
        seen["watched"] = args[-1]
        return target(*args)

    monkeypatch.setattr(loop, "encode", spy_encode)
    monkeypatch.setattr(loop, "ForgetTarget", spy_target)
    config = SETTINGS | {"steps": 2, "seed": 3}
    unlearn(snapped(), forget, retain + passages, config, tokenizer=tiny.tokenizer())
    assert seen["watched"] == watched
    assert not set(trained["retain"]) & set(watched)
    assert len(trained["retain"]) == len(kept)


def test_a_run_whose_budget_ends_hands_over_the_check_that_came_closest(monkeypatch):
    """Forgetting can drift back late in a run: when the budget ends first, the weights of the
    kept check whose worst format is nearest its aim are returned, not the last ones."""
    from quail.unlearning import loop

    class NeverHolds(loop.ForgetTarget):
        def holds(self, scores, original):
            return False

    monkeypatch.setattr(loop, "MAX_BACKTRACKS", 0)
    monkeypatch.setattr(loop, "ForgetTarget", NeverHolds)
    # 8 steps of 0.1 bring the forget score to its lowest at step 6 and keep it there; of equal
    # checks the earliest, which moved least, is handed over
    result = run(snapped(), target=0.0, utility_floor=0.0, steps=8, lr=0.1)
    outcome = result.outcome
    worst = [max(c["scores"][f]["forget"] for f in c["scores"]) for c in outcome.checks[1:]]
    assert outcome.reason == "budget"
    assert outcome.step == 1 + worst.index(min(worst)) < len(result.curves)
    kept = outcome.checks[outcome.step]["scores"]
    assert measure(result.model) == {k: kept[k] for k in ("fp", GRID)}
    assert f"kept step {outcome.step}, the check that came closest" in result.statement


def test_probes_are_the_answers_or_else_passage_continuations():
    passages = [Example("", "one two three four five"), Example("", "too short")]
    assert probes(passages, 10, 0) == [Example("one two", " three four five")]
    assert probes([*passages, Example("q", " a")], 10, 0) == [Example("q", " a")]


def test_quantize_model_of_the_result_changes_nothing():
    """The shipped model is on the grid: quantizing it again changes no weight."""
    result = run(snapped())
    quantized = quantize_model(result.model, parse_spec(GRID))
    for (n, a), (_, b) in zip(
        result.model.named_parameters(), quantized.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), n


def test_a_measured_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """The sign steps' momentum is in the checkpoint: a resumed run ends where a straight one
    does."""
    from safetensors.torch import load_file

    forget, retain = tiny.split()
    # target 0 is never met and floor 0 never breaks: every step runs
    settings = SETTINGS | {"steps": 8, "target": 0.0, "utility_floor": 0.0, "save_every": 3}

    def go(out, resume=False):
        model = snapped()
        return unlearn(model, forget, retain, settings, tokenizer=tiny.tokenizer(), out=out,
                       resume=resume)  # fmt: skip

    first = go(tmp_path / "straight")
    with tiny.interrupted_after(monkeypatch, 2 * 4):  # forget + retain batches of 4 steps
        go(tmp_path / "resumed")
    result = go(tmp_path / "resumed", resume=True)
    assert result.outcome.reason == "budget" and result.outcome.step == first.outcome.step
    straight = load_file(str(tmp_path / "straight" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert [c["step"] for c in result.outcome.checks] == list(range(9))


def test_held_out_examples_set_the_aim_and_the_stop_fires_there_not_before():
    """A classifier that never saw a campaign still labels most of it: given held-out examples,
    forgetting aims at the original's score on them, not at `target` x its forget score."""
    forget, retain = tiny.split()
    # a set the model half knows: the retain facts, and the forget questions with each other's
    # answers (which it never learned)
    answers = [e.target for e in forget[1:]] + [forget[0].target]
    holdout = retain + [Example(e.prompt, a) for e, a in zip(forget, answers, strict=True)]
    config = SETTINGS | {"target": 0.0}  # on its own, this target never holds
    result = unlearn(snapped(), forget, retain, config, tokenizer=tiny.tokenizer(), holdout=holdout)
    outcome = result.outcome
    original = outcome.original
    assert all(0 < original[f]["holdout"] < original[f]["forget"] for f in original)
    held = [
        all(c["scores"][f]["forget"] <= original[f]["holdout"] for f in original)
        for c in outcome.checks[1:]
    ]
    assert outcome.reason == "target" and held[-1] and not any(held[:-1])
    assert all("holdout" not in c["scores"][f] for c in outcome.checks[1:] for f in original)
    assert "held-out examples" in result.statement
    with pytest.raises(QuailError, match="does not measure: use method quail"):
        unlearn(snapped(), forget, retain, {"method": "ga_gdr"}, tokenizer=tiny.tokenizer(),
                holdout=holdout)  # fmt: skip


def test_given_held_out_passages_the_forget_passages_must_read_as_unseen_too(monkeypatch):
    """Answers can go while the passages still say the same: where the forget set has passages
    and held-out ones of their kind are given, their Min-K% AUC against those is an aim too."""
    from quail.evaluation.metrics import membership_auc
    from quail.unlearning import target as target_module
    from quail.unlearning.target import ForgetTarget

    forget, retain = tiny.split()
    said = [Example("", f"{e.prompt}{e.target}") for e in forget]  # the forget facts as text
    unseen = [
        Example("", f"{p} lives in {c}")
        for p, c in zip(tiny.PEOPLE[:8], tiny.CITIES[::-1], strict=True)
    ]
    model, tok = snapped(), tiny.tokenizer()
    judged = ForgetTarget(tok, forget + said, retain, [GRID], 0.1, 0.8, holdout=unseen)
    scores = judged.measure(model)
    members, others = [e.target for e in said], [e.target for e in unseen]
    assert scores["fp"]["passages_auc"] == membership_auc(model, tok, members, others)
    assert "holdout" not in judged.sets  # passages alone set no aim for the answers
    assert (
        "passages_auc"
        not in ForgetTarget(tok, forget + said, retain, [GRID], 0.1, 0.8).measure(model)["fp"]
    )

    n, m = len(members), len(others)
    noise = 2 * ((n + m + 1) / (12 * n * m)) ** 0.5
    original = {f: {"forget": 50.0, "retain": 90.0, "passages_auc": 1.0} for f in ("fp", GRID)}
    assert judged.passages_aim(original["fp"]) == pytest.approx(0.5 + max(0.05, noise))
    answered = {f: {"forget": 4.0, "retain": 90.0, "passages_auc": 0.99} for f in original}
    assert not judged.holds(answered, original)  # the answers are gone, the passages are not
    assert max(judged.shortfall(answered, original)) == pytest.approx(
        100 * (0.49 - max(0.05, noise))
    )
    # of two checks with the same worst gap, the one whose next worst is smaller came closer
    closer = answered | {GRID: answered[GRID] | {"passages_auc": 0.7}}
    farther = answered | {GRID: answered[GRID] | {"passages_auc": 0.9}}
    assert judged.shortfall(closer, original) < judged.shortfall(farther, original)
    # the answers come before the passages: a check with no answers left came closer than one
    # with an answer left (6.25 of 16 probes), however much better the latter's passages read
    gone = {f: {"forget": 0.0, "retain": 90.0, "passages_auc": 0.9} for f in original}
    left = {f: {"forget": 6.25, "retain": 90.0, "passages_auc": 0.6} for f in original}
    assert judged.shortfall(gone, original) < judged.shortfall(left, original)
    alike = {f: answered[f] | {"passages_auc": 0.5} for f in original}
    assert judged.holds(alike, original)

    # in a run: the answers' target (0.5 x) holds within the budget; with passages that still
    # read as trained on, it runs on to the budget's end, and says why
    config = SETTINGS
    monkeypatch.setattr(target_module, "membership_auc", lambda *args: 1.0)
    kept = unlearn(snapped(), forget + said, retain, config, tokenizer=tok, holdout=unseen)
    assert kept.outcome.reason == "budget" and len(kept.curves) == 30
    assert "passages AUC 1.00/1.00" in kept.statement
    monkeypatch.setattr(target_module, "membership_auc", lambda *args: 0.5)
    gone = unlearn(snapped(), forget + said, retain, config, tokenizer=tok, holdout=unseen)
    assert gone.outcome.reason == "target" and len(gone.curves) < 30


def test_a_broken_utility_floor_sends_the_run_back_at_half_the_lr():
    """A check below the floor restores the last check that kept it and goes on at half the
    lr (a trajectory fine enough to stop on), instead of ending there; at most MAX_BACKTRACKS
    times. A floor of 1.0 breaks at the first retain loss, so the run has to back off."""
    from quail.unlearning.loop import MAX_BACKTRACKS

    result = run(snapped(), steps=16, check_every=2, lr=0.1, utility_floor=1.0, target=0.0)
    outcome, lrs = result.outcome, [c["lr"] for c in result.curves]
    floor = outcome.original["fp"]["retain"]
    assert 1 <= outcome.backtracks <= MAX_BACKTRACKS
    broke = [c["step"] for c in outcome.checks[1:] if c["scores"]["fp"]["retain"] < floor]
    assert broke and len(result.curves) > broke[0]  # it went on past the first broken check
    halvings = len(set(lrs)) - 1
    assert set(lrs) == {0.1 / 2**k for k in range(halvings + 1)}
    assert outcome.backtracks - 1 <= halvings <= outcome.backtracks
    kept = [c for c in outcome.checks if c["step"] == outcome.step]
    assert all(c["scores"]["fp"]["retain"] >= floor for c in kept)  # what it returns kept it
