"""The README's walkthrough ("Unlearn facts from your own model") runs as written, so its
commands cannot drift from the CLI: every `quail` line of its block, in order, on a tiny Llama
with a sentencepiece tokenizer (one llama.cpp's converter takes) and facts files of the shape
the README describes. Skipped where llama.cpp is not installed, as tests/test_gguf_llamacpp.py
is; nothing is downloaded."""

import io
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quail.cli import app
from tiny import tiny_llama

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Unlearn facts from your own model"
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Peru": "Lima", "Cuba": "Havana"}


def walkthrough() -> list[str]:
    """The commands of the section's bash block, comments removed."""
    section = README.read_text("utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [command for line in lines if line for command in line.split(" && ")]


def test_the_walkthrough_is_at_most_ten_commands_from_a_fresh_venv():
    commands = walkthrough()
    assert len(commands) <= 10
    assert commands[:3] == [
        "python -m venv .venv",
        ". .venv/bin/activate",
        'pip install -c constraints.txt -e ".[llamacpp]"',
    ]
    assert all(command.startswith("quail ") for command in commands[3:])


def facts(tmp_path: Path) -> None:
    """forget.jsonl and retain.jsonl of question,answer lines, as the README describes them."""
    records = [
        {"question": f"What is the capital of {country}?", "answer": city}
        for country, city in CAPITALS.items()
    ]
    for name, part in (("forget", records[:2]), ("retain", records[2:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))


def my_model(folder: Path) -> None:
    """A Hugging Face folder of a tiny Llama whose tokenizer llama.cpp's converter reads."""
    spm = pytest.importorskip("sentencepiece")
    from transformers import LlamaTokenizer

    text = " ".join(f"What is the capital of {k}? {v}" for k, v in CAPITALS.items())
    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([text] * 10), model_writer=model_file, vocab_size=64,
        model_type="bpe", character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2, hard_vocab_limit=False,
    )  # fmt: skip
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(model_file.getvalue())
    tokenizer = LlamaTokenizer.from_pretrained(folder)
    tiny_llama(0, vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_the_walkthrough_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("gguf", reason="gguf is not installed")
    from quail.gguf import converter

    if not converter.local_script().is_file():
        pytest.skip("llama.cpp's converter is not on this machine (tests/test_gguf_llamacpp.py)")
    monkeypatch.chdir(tmp_path)
    facts(tmp_path)
    my_model(tmp_path / "my-model")
    for command in walkthrough()[3:]:
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
        assert "gguf-q4_1" in result.output or "unlearned" in result.output
    assert json.loads((tmp_path / "unlearned" / "run.json").read_text())["n_forget"] == 2
    assert (tmp_path / "unlearned-q4_1.gguf").stat().st_size > 0
