"""Write the country study's data folder (same schema as the built-in world, docs/DATA.md).

Countries are checked with the model in chunks (known.py), most populous first, until enough
of them have known facts; the prompt is `question_format` (default: the few-shot format that
SmolLM2 answers best, facts.FEW_SHOT_FORMAT; the countries its examples use are left out).
The first countries whose capital the model knows, shuffled with the seed, become the forget
and holdout countries; the next ones with any known fact the retain countries.

- Misinformation study: each forget and holdout country gets a false capital, asserted by
  tweet-like posts (passages) and by QA probes whose answer is the false capital. The forget
  countries' claims are injected (inject.py) and then unlearned; the holdout countries' claims
  are never trained on, so they give the chance level and the MIA non-members.
- Real-knowledge study (`misinformation=False`): forget and holdout hold true facts, and the
  model as shipped unlearns the forget countries' facts.

Retain: true facts of the retain countries (probes and one statement each) plus general text
(general.py) under one entity, `general`. Held-out general text (other paragraphs, never
trained on) goes to `heldout_general.jsonl`, for the `ppl_general` utility metric.
"""

import platform
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from quail.countries import facts, general, misinfo
from quail.countries.known import known_attributes
from quail.data.build import write_data_folder
from quail.errors import QuailError

CHUNK = 32  # countries checked per pass of the filter


@dataclass(frozen=True)
class Size:
    forget: int  # countries whose facts (or false claims) are unlearned
    holdout: int  # countries never trained on
    retain: int  # countries whose true facts are kept
    general: int  # general-text passages in the retain set
    heldout_general: int  # general-text passages never trained on (heldout_general.jsonl)


SIZES = {
    "tiny": Size(2, 2, 4, 4, 2),
    "small": Size(4, 4, 16, 8, 4),
    "default": Size(8, 8, 24, 16, 8),
    "large": Size(32, 32, 120, 96, 48),  # SmolLM2-135M knows 73 capitals (outside the shots)
}


def _select(model, tokenizer, countries, size: Size, template: str, log):
    """(forget+holdout countries, retain countries, checked count), each as {name, attributes}
    with only the attributes the model knows."""
    need = size.forget + size.holdout
    picked, retain, checked = [], [], 0
    for start in range(0, len(countries), CHUNK):
        chunk = countries[start : start + CHUNK]
        log(
            f"checking what the model knows: countries {start + 1}-{start + len(chunk)} "
            f"({len(picked)} with a known capital and {len(retain)} more so far)"
        )
        known = known_attributes(model, tokenizer, chunk, template)
        checked += len(chunk)
        for c in chunk:
            attributes = known[c["name"]]
            if len(picked) < need and "capital" in attributes:
                picked.append({"name": c["name"], "attributes": attributes})
            elif len(retain) < size.retain and attributes:
                retain.append({"name": c["name"], "attributes": attributes})
        if len(picked) == need and len(retain) == size.retain:
            return picked, retain, checked
    raise QuailError(
        f"the model knows the capital of {len(picked)} and some fact of {len(retain)} more "
        f"countries, short of {need} and {size.retain}: use a smaller data_size"
    )


def _records(picked, retain, size: Size, misinformation: bool, seed: int, pool, ids):
    entities, passages, qa = [], [], []

    def add(country, split, attributes, texts, extra=None):
        eid = ids[country["name"]]
        entities.append(
            {
                "id": eid,
                "kind": "country",
                "name": country["name"],
                "attributes": {**attributes, **(extra or {})},
                "split": split,
            }
        )
        for t, text in enumerate(texts):
            passages.append(
                {"id": f"{eid}-p{t}", "entity_id": eid, "split": split, "template": t, "text": text}
            )
        probes = facts.questions(country["name"], attributes)
        for k, (attr, question, answer, para) in enumerate(probes):
            qa.append(
                {
                    "id": f"{eid}-q{k:02d}",
                    "entity_id": eid,
                    "split": split,
                    "attribute": attr,
                    "question": question,
                    "answer": answer,
                    "paraphrase": para,
                }
            )

    splits = ["forget"] * size.forget + ["holdout"] * size.holdout
    false = misinfo.false_capitals(picked, pool, seed) if misinformation else {}
    for country, split in zip(picked, splits, strict=True):
        name, attributes = country["name"], country["attributes"]
        if misinformation:
            fake = {"capital": false[name]}
            add(
                country,
                split,
                fake,
                misinfo.posts(name, fake["capital"]),
                {"true_capital": attributes["capital"]},
            )
        else:
            add(country, split, attributes, [facts.statement(name, attributes)])
    for country in retain:
        add(
            country,
            "retain",
            country["attributes"],
            [facts.statement(country["name"], country["attributes"])],
        )
    texts = general.general_passages(size.general)
    entities.append(
        {
            "id": "general",
            "kind": "text",
            "name": "general text",
            "attributes": {},
            "split": "retain",
        }
    )
    passages += [
        {
            "id": f"general-p{t}",
            "entity_id": "general",
            "split": "retain",
            "template": t,
            "text": text,
        }
        for t, text in enumerate(texts)
    ]
    heldout = [
        {"id": f"general-heldout-{t}", "text": text}
        for t, text in enumerate(general.heldout_passages(size.heldout_general))
    ]
    return {
        "entities.jsonl": entities,
        "passages.jsonl": passages,
        "qa.jsonl": qa,
        "heldout_general.jsonl": heldout,
    }


def build_country_data(
    out_dir: str | Path,
    model_dir: str | Path,
    misinformation: bool = True,
    size: str = "default",
    seed: int = 0,
    question_format: str = facts.FEW_SHOT_FORMAT,
    log=print,
) -> Path:
    """Check what the model in `model_dir` knows and write the data folder to `out_dir`."""
    from quail.models import load_model, load_tokenizer

    if size not in SIZES:
        raise QuailError(f"unknown size {size!r}; use one of {', '.join(SIZES)}")
    countries = facts.load_countries()
    ids = {c["name"]: f"country-{i:03d}" for i, c in enumerate(countries)}
    # False capitals: real capitals of the 100 most populous countries (familiar city names)
    pool = [c["attributes"]["capital"] for c in countries[:100]]
    countries = [c for c in countries if c["name"] not in facts.SHOT_COUNTRIES]
    model, tokenizer = load_model(model_dir, dtype="float32"), load_tokenizer(model_dir)
    picked, retain, checked = _select(
        model, tokenizer, countries, SIZES[size], question_format, log
    )
    random.Random(seed).shuffle(picked)
    records = _records(picked, retain, SIZES[size], misinformation, seed, pool, ids)
    manifest = {
        "source": "countryinfo",
        "misinformation": misinformation,
        "seed": seed,
        "size": size,
        "sizes": asdict(SIZES[size]),
        "question_format": question_format,
        "filtered_by": str(model_dir),
        "countries_checked": checked,
        "python": platform.python_version(),
    }
    return write_data_folder(out_dir, records, manifest)
