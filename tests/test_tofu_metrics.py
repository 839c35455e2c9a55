"""TOFU's metrics (quail.evaluation.tofu) on a tiny model and a small TOFU import."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import tiny
from quail.cli import app
from quail.data.importers import import_data
from quail.evaluation import load_eval_data
from quail.evaluation.tofu import ks_pvalue, reference_ratios, tofu_scores, truth_ratios
from unlearn_tiny import CITIES, JOBS, PEOPLE, WORDS, tokenizer


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rows(people, wrong):
    """TOFU-style records: the answer, its paraphrase and three perturbed answers."""
    return [
        {
            "question": f"{p} lives in",
            "answer": CITIES[i],
            "paraphrased_question": f"{p} lives in a",
            "paraphrased_answer": f"in {CITIES[i]}",
            "perturbed_answer": wrong,
        }
        for i, p in enumerate(people)
    ]


@pytest.fixture(scope="module")
def tofu_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tofu")
    src = root / "src"
    forget, retain = rows(PEOPLE[:2], JOBS[:3]), rows(PEOPLE[2:6], JOBS[3:6])
    jsonl(src / "forget01.json", forget)
    jsonl(src / "forget01_perturbed.json", forget)
    jsonl(src / "retain99.json", retain)
    jsonl(src / "retain_perturbed.json", retain)
    facts = [{"question": f"{p} works as a", "answer": JOBS[i], "perturbed_answer": CITIES[:3]}
             for i, p in enumerate(PEOPLE[6:9])]  # fmt: skip
    jsonl(src / "world_facts_perturbed.json", facts)
    jsonl(src / "real_authors_perturbed.json", facts[:2])
    import_data("tofu", src, root / "data")
    return root / "data"


def saved(path, model):
    model.save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


def tiny_model(seed=0):
    return tiny.tiny_llama(seed, vocab_size=len(WORDS), max_position_embeddings=64)


def test_the_import_keeps_real_authors_and_world_facts_for_utility_only(tofu_data):
    data = load_eval_data(tofu_data)
    assert {k: len(v) for k, v in data.tofu.items()} == {
        "forget": 2, "retain": 4, "world_facts": 3, "real_authors": 2
    }  # fmt: skip
    assert len(data.qa["retain"]) == 4  # world facts and real authors are no retain probes


def test_truth_ratio_by_hand(tofu_data):
    model, tok = tiny_model(), tokenizer()
    probe = load_eval_data(tofu_data).tofu["forget"][0]

    def normalised_logprob(answer):  # mean log-prob of the answer's tokens, one forward pass
        prompt_ids = tok(probe.prompt)["input_ids"]
        ids = tok(f"{probe.prompt} {answer}")["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        answer_positions = range(len(prompt_ids), len(ids))
        return sum(logprobs[i - 1, ids[i]].item() for i in answer_positions) / len(answer_positions)

    assert probe.correct == f"in {CITIES[0]}" and probe.perturbed == tuple(JOBS[:3])
    wrong = [normalised_logprob(a) for a in probe.perturbed]
    expected = math.exp(sum(wrong) / 3 - normalised_logprob(probe.correct))
    assert truth_ratios(model, tok, [probe])[0] == pytest.approx(expected, rel=1e-4)
    assert expected != pytest.approx(1.0)  # a random model does prefer some answers


def test_ks_pvalue_exact():
    assert ks_pvalue([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)  # 2 of the 20 orderings
    assert ks_pvalue([0.5, 0.7], [0.5, 0.7]) == 1.0
    assert ks_pvalue(list(range(50)), list(range(100, 150))) < 1e-20


def test_forget_quality_is_one_against_the_same_model(tmp_path, tofu_data):
    model_dir = saved(tmp_path / "model", tiny_model())
    args = ["evaluate", str(model_dir), "--data", str(tofu_data), "--quant", "fp,int8"]
    result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "tofu_forget_quality not reported" in result.output  # no reference: says why
    assert (
        "tofu_forget_quality" not in json.loads((tmp_path / "r.json").read_text())["results"]["fp"]
    )
    args += ["--tofu-reference", str(model_dir), "--json", str(tmp_path / "s.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "s.json").read_text())["results"]
    assert results["fp"]["tofu_forget_quality"] == 1.0
    assert 0 <= results["rtn-int8-channel-sym"]["tofu_forget_quality"] <= 1
    assert 0 <= results["fp"]["tofu_model_utility"] <= 1


def test_model_utility_drops_for_a_damaged_model(tofu_data):
    """A model trained on the retain and utility answers, then the same with noisy weights."""
    data = load_eval_data(tofu_data)
    tok, model = tokenizer(), tiny_model()
    texts = [f"{p.prompt} {answer}" for name in ("retain", "world_facts", "real_authors")
             for p in data.tofu[name] for answer in {p.answer, p.correct}]  # fmt: skip
    batch = tok(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    trained = tofu_scores(model, tok, data.tofu)["tofu_model_utility"]
    torch.manual_seed(1)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(torch.randn_like(weight) * weight.std())
    damaged = tofu_scores(model, tok, data.tofu)["tofu_model_utility"]
    assert 0 <= damaged < trained <= 1


def test_a_reference_needs_a_tofu_import(tmp_path):
    from quail.errors import QuailError

    with pytest.raises(QuailError, match="needs TOFU's perturbed answers"):
        reference_ratios(tmp_path, {})
