"""Every script in lab/experiments runs at toy size (the small built-in data set, a tiny random
Llama), so the evidence lab/RECORD.md and FINDINGS.md rest on cannot rot unseen. One script:
`pytest tests/test_lab.py -k regime`; all of them: `pytest -m lab`. The scripts run in this
process (runpy), which spares each one the import of torch and transformers."""

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest
import torch

import tiny
from quail.base.tokenizer import train_tokenizer
from quail.data import build_dataset, load_passages, load_qa

LAB = Path(__file__).resolve().parents[1] / "lab" / "experiments"

# name: (script and its arguments at toy size, what its output must hold); {data}, {base},
# {studies} and {tmp} are filled in
RUNS = {
    "answer_confidence": ("answer_confidence {data} {base} {base}", "| 0."),
    "claims_reference": ("claims_reference {data} --max-epochs 1", "seed 0: forget"),
    "hinge_default": (
        "hinge_default --base {base} --data {data} --run quail_hinge --grid int4-g16 "
        "--steps 2 --batch 2",
        '"run": "quail_hinge"',
    ),
    "measured_updates": (
        'measured_updates {data} {base} {{"method":"quail","steps":2}} --formats int4-g16',
        "on other probes",
    ),
    "passage_knowledge": ("passage_knowledge {data} {base} {base}", "'named_forget': "),
    "probe_breakdown": ("probe_breakdown {studies}/drawn", "| ga_gdr | fp | "),
    "prompt_formats": ("prompt_formats {base} {tmp}/forget.jsonl {tmp}/retain.jsonl", "few-shot"),
    "regime snap": (
        "regime snap --base {base} --data {data} --grid int4-g16 --out {tmp}/snapped "
        "--max-epochs 1 --eval-every 1",
        '"snap_epochs": 1',
    ),
    "regime unlearn": (
        "regime unlearn --base {base} --data {data} --grid rtn-int4-g32-asym --steps 2 --batch 2",
        '"recovery"',
    ),
    "regime engine": (
        'regime engine --base {base} --data {data} --grid int4-g16 --config {{"steps":2}}',
        '"unl_quant"',
    ),
    "seed_table": ("seed_table {studies}/0 {studies}/1", "| ga_gdr | 40.0 ["),
    "smollm2_budget": (
        "smollm2_budget {data} {tmp}/out 1e-3 --original {base} --methods ga_gdr --limit 2",
        "on the grid: bucket overlap",
    ),
    "smollm2_embedding_swap": (
        "smollm2_embedding_swap {data} {base} --original {base} --limit 2",
        "shipped, unlearned embedding rtn-int4-g32-asym {'knowmem_forget'",
    ),
    "smollm2_inject": (
        "smollm2_inject {data} {tmp}/injected steps=2 --model {base} --limit 2",
        "fp {'knowmem_forget'",
    ),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The small built-in data set, a tiny Llama with a tokenizer trained on it, and two study
    folders' cells as `quail run` writes them."""
    root = tmp_path_factory.mktemp("lab")
    data = build_dataset(root / "data", seed=0, size="small")
    texts = [r["text"] for r in load_passages(data)] + [r["question"] for r in load_qa(data)]
    tokenizer = train_tokenizer(texts + [r["answer"] for r in load_qa(data)])
    model = tiny.tiny_llama(  # 128 wide: every group size the scripts name divides it
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
        max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    for seed, scores in enumerate(([30.0, 40.0], [50.0, 40.0])):  # two runs, two probes each
        cell = {"knowmem_forget": sum(scores) / 2, "probes": {"knowmem_forget": scores}}
        (root / "studies" / str(seed) / "cells" / "ga_gdr").mkdir(parents=True)
        (root / "studies" / str(seed) / "cells" / "ga_gdr" / "eval-fp.json").write_text(
            json.dumps(cell)
        )
    drawn = root / "studies" / "drawn"  # a study that names its data and probe draw
    (drawn / "cells" / "ga_gdr").mkdir(parents=True)
    (drawn / "study.json").write_text(
        json.dumps({"data": str(data), "eval_limit": 2, "data_seed": 0})
    )
    (drawn / "cells" / "ga_gdr" / "eval-fp.json").write_text(
        json.dumps({"probes": {"knowmem_forget": [100.0, 0.0]}})
    )
    return {"data": data, "base": root / "base", "studies": root / "studies"}


def test_every_lab_script_is_smoke_run():
    assert {path.stem for path in LAB.glob("*.py")} == {run.split()[0] for run, _ in RUNS.values()}


@pytest.mark.lab
@pytest.mark.parametrize("name", RUNS)
def test_lab_script_runs_at_toy_size(name, world, tmp_path, monkeypatch, capsys):
    command, expected = RUNS[name]
    qa = [{"question": r["question"], "answer": r["answer"]} for r in load_qa(world["data"])]
    for split, records in (("forget", qa[:2]), ("retain", qa[2:8])):  # retain: 4 shots + 2
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    script, *args = command.format(**world, tmp=tmp_path).split()
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *args])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(LAB / f"{script}.py"), run_name="__main__")
    finally:
        torch.set_num_threads(threads)  # scripts set their own
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert expected in capsys.readouterr().out
