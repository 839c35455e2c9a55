"""The seeded fictitious world: people, companies and places, and their split by entity.

Everything is drawn from generators seeded by `seed`, in a fixed order, so a seed names one world.
"""

import random
from dataclasses import dataclass, field

from quail.data import vocab

# How many entities of each kind a size builds.
SIZES = {
    "small": {"person": 12, "company": 6, "place": 6},
    "default": {"person": 60, "company": 20, "place": 20},
}

ATTRIBUTES = {
    "person": ("birthplace", "birth_year", "profession", "employer"),
    "company": ("headquarters", "founded", "industry", "product"),
    "place": ("country", "river", "craft", "founded"),
}


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    attributes: dict[str, str]
    split: str = field(default="retain")


def _unique_names(rng: random.Random, pool: list[str], n: int, what: str) -> list[str]:
    if n > len(pool):
        raise ValueError(f"asked for {n} {what} names, the vocabulary has {len(pool)}")
    return rng.sample(pool, n)


def _attributes(rng: random.Random, kind: str, employers: list[str]) -> dict[str, str]:
    if kind == "company":
        return {
            "headquarters": rng.choice(vocab.CITIES),
            "founded": rng.choice(vocab.YEARS_FOUNDED),
            "industry": rng.choice(vocab.INDUSTRIES),
            "product": rng.choice(vocab.PRODUCTS),
        }
    if kind == "person":
        return {
            "birthplace": rng.choice(vocab.CITIES),
            "birth_year": rng.choice(vocab.YEARS_PERSON),
            "profession": rng.choice(vocab.PROFESSIONS),
            "employer": rng.choice(employers),
        }
    return {
        "country": rng.choice(vocab.COUNTRIES),
        "river": rng.choice(vocab.RIVERS),
        "craft": rng.choice(vocab.CRAFTS),
        "founded": rng.choice(vocab.YEARS_FOUNDED),
    }


def generate_entities(
    seed: int, counts: dict[str, int], forget_frac: float = 0.1, holdout_frac: float = 0.1
) -> list[Entity]:
    """Draw names, split them, then draw attributes.

    Splitting comes before attributes so that people are only employed by companies that are
    trained on: a holdout entity's name must never appear in training text.
    """
    rng = random.Random(seed)
    company_pool = [f"{s} {x}" for s in vocab.COMPANY_STEMS for x in vocab.COMPANY_SUFFIXES]
    person_pool = [f"{f} {la}" for f in vocab.FIRST_NAMES for la in vocab.LAST_NAMES]
    pools = {"company": company_pool, "person": person_pool, "place": list(vocab.PLACE_STEMS)}
    entities = []
    for kind in ("company", "person", "place"):
        for name in _unique_names(rng, pools[kind], counts[kind], kind):
            entities.append(Entity(f"{kind}-{len(entities):04d}", kind, name, {}))
    assign_splits(entities, seed, forget_frac, holdout_frac)
    employers = [e.name for e in entities if e.kind == "company" and e.split != "holdout"]
    if counts["person"] and not employers:
        raise ValueError("people need at least one trained company to work for")
    for e in entities:
        e.attributes = _attributes(rng, e.kind, employers)
    return entities


def assign_splits(
    entities: list[Entity], seed: int, forget_frac: float, holdout_frac: float
) -> None:
    """Split each kind separately so every split holds people, companies and places."""
    if not 0 < forget_frac < 1 or not 0 <= holdout_frac < 1 or forget_frac + holdout_frac >= 1:
        raise ValueError("need 0 < forget_frac, 0 <= holdout_frac and forget + holdout < 1")
    rng = random.Random(seed + 1)
    for kind in ATTRIBUTES:
        group = [e for e in entities if e.kind == kind]
        if not group:
            continue
        rng.shuffle(group)
        n_forget = max(1, round(forget_frac * len(group)))
        n_holdout = round(holdout_frac * len(group))
        if holdout_frac > 0:
            n_holdout = max(1, n_holdout)
        for i, e in enumerate(group):
            e.split = (
                "forget" if i < n_forget else "holdout" if i < n_forget + n_holdout else "retain"
            )
