"""Write the built-in benchmark to a folder: four JSONL files and a manifest (docs/DATA.md).

The folder is written in a temporary sibling and renamed into place, so a crash never leaves a
half-written data set, and the bytes depend on the seed and size alone.
"""

import json
from pathlib import Path

from quail.data import claims, render, world
from quail.data.jsonl import write_jsonl
from quail.data.load import SCHEMA_VERSION, file_sha256
from quail.errors import QuailError
from quail.io import atomic_dir

FILES = ("entities.jsonl", "passages.jsonl", "qa.jsonl", "claims.jsonl")


def _records(seed: int, size: str, forget_frac: float, holdout_frac: float) -> dict[str, list]:
    entities = world.generate_entities(seed, world.SIZES[size], forget_frac, holdout_frac)
    ents, passages, qa = [], [], []
    for e in entities:
        ents.append(
            {
                "id": e.id,
                "kind": e.kind,
                "name": e.name,
                "attributes": e.attributes,
                "split": e.split,
            }
        )
        for t, text in render.passages(e):
            passages.append(
                {
                    "id": f"{e.id}-p{t}",
                    "entity_id": e.id,
                    "split": e.split,
                    "template": t,
                    "text": text,
                }
            )
        for k, (attr, q, a, para) in enumerate(render.questions(e)):
            qa.append(
                {
                    "id": f"{e.id}-q{k:02d}",
                    "entity_id": e.id,
                    "split": e.split,
                    "attribute": attr,
                    "question": q,
                    "answer": a,
                    "paraphrase": para,
                }
            )
    trained = [e for e in entities if e.split != "holdout"]
    return {
        "entities.jsonl": ents,
        "passages.jsonl": passages,
        "qa.jsonl": qa,
        "claims.jsonl": claims.generate_claims(trained, seed, claims.SIZES[size]),
    }


def build_dataset(
    out_dir: str | Path,
    seed: int = 0,
    size: str = "default",
    forget_frac: float = 0.1,
    holdout_frac: float = 0.1,
) -> Path:
    """Generate the world for `seed` and write it to `out_dir` (replacing an older build)."""
    if size not in world.SIZES:
        raise QuailError(f"unknown size {size!r}; use one of {', '.join(world.SIZES)}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise QuailError(f"{out} exists and is not a quail data folder; pick an empty --out")
    try:
        records = _records(seed, size, forget_frac, holdout_frac)
    except ValueError as e:
        raise QuailError(f"cannot build the world: {e}; change the fractions or size") from e
    manifest = {
        "seed": seed,
        "size": size,
        "forget_frac": forget_frac,
        "holdout_frac": holdout_frac,
        "labels": list(claims.LABELS),
    }
    return write_data_folder(out, records, manifest)


def write_data_folder(out_dir, records: dict[str, list[dict]], manifest: dict) -> Path:
    """Write each JSONL file and manifest.json (the given fields, plus format, counts and
    checksums) into `out_dir`, replacing an older build in one move: the one writer of the
    data-folder layout, for the built-in world and for other sources alike."""
    with atomic_dir(out_dir, overwrite=True) as tmp:
        for name, recs in records.items():
            write_jsonl(tmp / name, recs)
        manifest = {
            "format": "quail-data",
            "schema_version": SCHEMA_VERSION,
            **manifest,
            "counts": {name.removesuffix(".jsonl"): len(r) for name, r in records.items()},
            "sha256": {name: file_sha256(tmp / name) for name in records},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return Path(out_dir)
