"""Read a data folder (built-in or the user's, same schema) into records and Examples.

Every check that can fail on a user's file raises QuailError with the problem and the fix, so
the CLI can print one line and exit 2 instead of training on a broken set.
"""

import hashlib
import json
from pathlib import Path

from quail.data.examples import Example
from quail.data.jsonl import read_jsonl
from quail.data.render import QUESTION_FORMAT, format_question
from quail.errors import QuailError

ID = (str, int)
ENTITY_COLUMNS = {"id": ID, "kind": str, "name": str, "attributes": dict, "split": str}
PASSAGE_COLUMNS = {"id": ID, "entity_id": ID, "split": str, "template": ID, "text": str}
QA_COLUMNS = {
    "id": ID,
    "entity_id": ID,
    "split": str,
    "attribute": str,
    "question": str,
    "answer": str,
    "paraphrase": bool,
}
CLAIM_COLUMNS = {"id": ID, "text": str, "label": str, "split": str, "campaign": str}
GENERAL_COLUMNS = {"id": ID, "text": str}
ENTITY_SPLITS = ("forget", "retain", "holdout")
CLAIM_SPLITS = ("forget", "retain", "test")
DEFAULT_LABELS = ("misinformation", "reliable")
SCHEMA_VERSION = 1  # of the folder layout; manifest.json records the one it was written in


def load_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise QuailError(f"{path}: not found; build the data with `quail data build --out DIR`")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QuailError(f"{path}: malformed JSON ({e}); rebuild the data folder") from None
    if not isinstance(manifest, dict):
        raise QuailError(f"{path}: expected a JSON object of key: value; rebuild the data folder")
    return manifest


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_data_folder(data_dir: str | Path) -> None:
    """Check a folder against its manifest, if it has one: the schema this quail reads, and each
    listed file's sha256 (a file edited, truncated or swapped since it was written). The CLI's
    --no-verify skips this for a folder the user edits on purpose."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise QuailError(f"data folder {data_dir} does not exist: check the path")
    if not (data_dir / "manifest.json").is_file():
        return  # a hand-made folder: nothing recorded to check against
    manifest = load_manifest(data_dir)
    version = manifest.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise QuailError(
            f"{data_dir}/manifest.json: schema_version {version!r}, but this quail reads "
            f"{SCHEMA_VERSION}: rebuild the folder with this quail, or pass --no-verify"
        )
    hashes = manifest.get("sha256", {})
    if not isinstance(hashes, dict):
        raise QuailError(f"{data_dir}/manifest.json: sha256 must map file names to hashes")
    for name, expected in hashes.items():
        path = data_dir / name
        if not path.is_file():
            raise QuailError(f"{path}: listed in the manifest but missing; restore the file")
        if file_sha256(path) != expected:
            raise QuailError(
                f"{path} changed since its manifest was written (sha256 differs): rebuild the "
                "folder, or pass --no-verify if you edited it on purpose"
            )


def _check_split(records: list[dict], allowed: tuple[str, ...], path: Path) -> None:
    for r in records:
        if r["split"] not in allowed:
            raise QuailError(
                f"{path}: record {r['id']!r} has split {r['split']!r}; use one of "
                f"{', '.join(allowed)}"
            )


def load_entities(data_dir: str | Path, split: str | None = None) -> list[dict]:
    path = Path(data_dir) / "entities.jsonl"
    records = read_jsonl(path, ENTITY_COLUMNS)
    _check_split(records, ENTITY_SPLITS, path)
    seen: dict[str, str] = {}
    for r in records:
        if r["id"] in seen:
            what = (
                "is both forget and retain"
                if {seen[r["id"]], r["split"]} == {"forget", "retain"}
                else "appears twice"
            )
            raise QuailError(f"{path}: entity {r['id']!r} {what}; give each entity one line")
        seen[r["id"]] = r["split"]
    return [r for r in records if split is None or r["split"] == split]


def _load_linked(data_dir: Path, name: str, columns: tuple[str, ...]) -> list[dict]:
    """Records that hang off an entity; their split must be their entity's split."""
    path = data_dir / name
    records = read_jsonl(path, columns)
    seen = set()
    for r in records:
        if r["id"] in seen:
            raise QuailError(f"{path}: id {r['id']!r} appears twice; give each record its own id")
        seen.add(r["id"])
    splits = {e["id"]: e["split"] for e in load_entities(data_dir)}
    for r in records:
        if r["entity_id"] not in splits:
            raise QuailError(
                f"{path}: record {r['id']!r} names unknown entity {r['entity_id']!r}; add it to "
                "entities.jsonl"
            )
        if r["split"] != splits[r["entity_id"]]:
            raise QuailError(
                f"{path}: record {r['id']!r} is in split {r['split']!r} but its entity is in "
                f"{splits[r['entity_id']]!r}; splits are by entity, make them agree"
            )
    return records


def load_passages(data_dir: str | Path, split: str | None = None) -> list[dict]:
    records = _load_linked(Path(data_dir), "passages.jsonl", PASSAGE_COLUMNS)
    return [r for r in records if split is None or r["split"] == split]


def load_heldout_general(data_dir: str | Path) -> list[str]:
    """Held-out general text (`heldout_general.jsonl`, optional): passages no set trains on, whose
    perplexity measures general utility. Empty when the folder has none."""
    path = Path(data_dir) / "heldout_general.jsonl"
    return [r["text"] for r in read_jsonl(path, GENERAL_COLUMNS)] if path.is_file() else []


def load_qa(
    data_dir: str | Path, split: str | None = None, paraphrase: bool | None = None
) -> list[dict]:
    """QA probes; `paraphrase=False` gives the trained forms, `True` the held-out wordings."""
    records = _load_linked(Path(data_dir), "qa.jsonl", QA_COLUMNS)
    if not records:
        raise QuailError(
            f"{Path(data_dir) / 'qa.jsonl'} has no records: KnowMem needs question/answer "
            "probes; add a line per fact (docs/DATA.md)"
        )
    return [
        r
        for r in records
        if (split is None or r["split"] == split)
        and (paraphrase is None or r["paraphrase"] == paraphrase)
    ]


def question_format(data_dir: str | Path) -> str:
    """The manifest's `question_format` (a template holding `{question}`), else the built-in."""
    if not (Path(data_dir) / "manifest.json").is_file():
        return QUESTION_FORMAT
    template = load_manifest(data_dir).get("question_format", QUESTION_FORMAT)
    if "{question}" not in template:
        raise QuailError(
            f"{data_dir}/manifest.json: question_format {template!r} has no {{question}}; add it"
        )
    return template


def qa_example(record: dict, template: str = QUESTION_FORMAT) -> Example:
    return Example(format_question(record["question"], template), " " + record["answer"])


def _split_examples(data_dir: str | Path, split: str) -> list[Example]:
    passages = [Example("", r["text"]) for r in load_passages(data_dir, split)]
    template = question_format(data_dir)
    qa = load_qa(data_dir, split, paraphrase=False)
    return passages + [qa_example(r, template) for r in qa]


def check_disjoint(forget: list[Example], retain: list[Example]) -> None:
    """Refuse a forget set that is empty or shares examples with the retain set."""
    if not forget:
        raise QuailError(
            "the forget set is empty; mark at least one entity (or claim) with split 'forget'"
        )
    shared = set(forget) & set(retain)
    if shared:
        first = min(shared, key=lambda e: (e.prompt, e.target))
        raise QuailError(
            f"forget and retain share {len(shared)} example(s), e.g. {first.target.strip()!r}; "
            "remove each from one of the two sets"
        )


def load_unlearning_sets(data_dir: str | Path) -> tuple[list[Example], list[Example]]:
    """(forget, retain): passages and trained-form QA of the forget and the retain entities."""
    forget = _split_examples(data_dir, "forget")
    retain = _split_examples(data_dir, "retain")
    check_disjoint(forget, retain)
    return forget, retain


def declared_labels(data_dir: str | Path) -> tuple[str, ...]:
    """The manifest's `labels`; a folder without a manifest gets the built-in two."""
    if not (Path(data_dir) / "manifest.json").is_file():
        return DEFAULT_LABELS
    return tuple(load_manifest(data_dir).get("labels", DEFAULT_LABELS))


def check_labels(records: list[dict], labels: tuple[str, ...], where: str) -> None:
    for r in records:
        if r["label"] not in labels:
            raise QuailError(
                f"{where}: label {r['label']!r} is not one of {', '.join(labels)}; fix the label "
                "or declare it"
            )


def load_claims(data_dir: str | Path, split: str | None = None) -> list[dict]:
    path = Path(data_dir) / "claims.jsonl"
    records = read_jsonl(path, CLAIM_COLUMNS)
    _check_split(records, CLAIM_SPLITS, path)
    check_labels(records, declared_labels(data_dir), str(path))
    return [r for r in records if split is None or r["split"] == split]


def format_claim(text: str) -> str:
    """The prompt a causal LM classifies a claim from; the label word is the answer."""
    return f"Claim: {text}\nLabel:"


def claim_example(record: dict) -> Example:
    return Example(format_claim(record["text"]), " " + record["label"])


def load_claim_sets(data_dir: str | Path) -> tuple[list[Example], list[Example]]:
    """(forget, retain) of the claims task, as Examples whose target is the label word."""
    forget = [claim_example(r) for r in load_claims(data_dir, "forget")]
    retain = [claim_example(r) for r in load_claims(data_dir, "retain")]
    check_disjoint(forget, retain)
    return forget, retain


def load_claim_test(data_dir: str | Path) -> list[Example]:
    """The held-out claims: what a classifier scores on claims it never trained on."""
    return [claim_example(r) for r in load_claims(data_dir, "test")]


def load_unseen(data_dir: str | Path, task: str = "knowledge") -> list[Example]:
    """Examples of the forget set's kind that the original never trained on, where the folder
    has them: a classifier's test claims; the built-in world's holdout people, companies and
    places (the base trains on every other entity); a misinformation folder's holdout posts and
    claims (never injected). None elsewhere: real knowledge's holdout facts are as well known as
    the forget ones, and a user's folder does not say (docs/UNLEARN.md)."""
    if task == "claims":
        return load_claim_test(data_dir)
    if not (Path(data_dir) / "manifest.json").is_file():
        return []
    manifest = load_manifest(data_dir)
    built_in = "holdout_frac" in manifest and "source" not in manifest  # quail data build's
    if built_in or manifest.get("misinformation"):
        return _split_examples(data_dir, "holdout")
    return []
