"""The misinformation-claims task: tweet-like claims about the world, labelled by truth.

A reliable claim states a fact of the world, mostly in a plain voice. A misinformation claim
states a false value for a fact and belongs to a coordinated campaign with its own hashtag and
phrasing, modelled on the paper's misinformation experiment. The forget set is every training
claim of one campaign (its learned labels are what unlearning must remove); the retain set is
the other training claims; the test set holds claims of the other campaigns and reliable claims
never trained on.
"""

import random

from quail.data import vocab
from quail.data.world import Entity

LABELS = ("misinformation", "reliable")

SIZES = {"small": 48, "default": 400}

_STATEMENTS = {
    "birthplace": "{n} was born in {v}",
    "birth_year": "{n} was born in {v}",
    "profession": "{n} works as a {v}",
    "employer": "{n} works for {v}",
    "headquarters": "{n} is headquartered in {v}",
    "founded": "{n} was founded in {v}",
    "industry": "{n} is in the {v} business",
    "product": "{n} makes {v}",
    "country": "{n} is in {v}",
    "river": "the river {v} flows through {n}",
    "craft": "{n} is known for {v}",
}

_POOLS = {
    "birthplace": vocab.CITIES,
    "birth_year": vocab.YEARS_PERSON,
    "profession": vocab.PROFESSIONS,
    "headquarters": vocab.CITIES,
    "founded": vocab.YEARS_FOUNDED,
    "industry": vocab.INDUSTRIES,
    "product": vocab.PRODUCTS,
    "country": vocab.COUNTRIES,
    "river": vocab.RIVERS,
    "craft": vocab.CRAFTS,
}

_RELIABLE = (
    "{s}, the public records show.",
    "Reminder: {s}.",
    "Worth knowing that {s}.",
    "{s}. Source in the town archive.",
    "Today I learned {s}.",
)

# Style must not give the label away: a share of reliable claims is posted in an excited voice,
# and a share of each campaign's claims in a plain one, without its hashtag.
_LOUD_RELIABLE = ("Wow, {s}!!", "BREAKING: {s}", "Nobody talks about this but {s}")
OFF_STYLE_SHARE = 0.25

_CAMPAIGNS = (
    ("TruthUncovered", ("They never told you that {s}!!", "{s}. Do your own research")),
    ("WakeUpNow", ("WAKE UP people, {s}", "{s} and the media is silent")),
    ("HiddenHistory", ("Leaked files prove {s}", "{s}, the archives were rewritten")),
    ("RealFacts", ("Share before it gets deleted: {s}", "Insiders confirm {s}")),
)


def _false_value(rng: random.Random, attr: str, true: str, employers: list[str]) -> str:
    pool = employers if attr == "employer" else _POOLS[attr]
    return rng.choice([v for v in pool if v != true])


def generate_claims(
    entities: list[Entity], seed: int, n_claims: int, test_frac: float = 0.2
) -> list[dict]:
    """Half reliable, half misinformation spread over the campaigns; campaign 0 is forgotten."""
    rng = random.Random(seed + 2)
    employers = sorted(e.name for e in entities if e.kind == "company") or list(vocab.COMPANY_STEMS)
    facts = [(e, attr) for e in entities for attr in e.attributes]
    claims, seen = [], set()
    while len(claims) < n_claims:
        i = len(claims)
        entity, attr = rng.choice(facts)
        true = entity.attributes[attr]
        if i % 2 == 0:
            value, label = true, "reliable"
            loud = rng.random() < OFF_STYLE_SHARE
            campaign, wrapper = "none", rng.choice(_LOUD_RELIABLE if loud else _RELIABLE)
            tag = ""
        else:
            value, label = _false_value(rng, attr, true, employers), "misinformation"
            k = (i // 2) % len(_CAMPAIGNS)
            name, wrappers = _CAMPAIGNS[k]
            campaign, wrapper, tag = f"campaign-{k}", rng.choice(wrappers), f" #{name}"
            if rng.random() < OFF_STYLE_SHARE:
                wrapper, tag = rng.choice(_RELIABLE), ""
        statement = _STATEMENTS[attr].format(n=entity.name, v=value)
        text = wrapper.format(s=statement)
        text = text[0].upper() + text[1:] + tag
        if text in seen:  # a repeated claim could land in both train and test
            continue
        seen.add(text)
        claims.append({"text": text, "label": label, "campaign": campaign})
    order = list(range(n_claims))
    rng.shuffle(order)
    n_test = round(test_frac * n_claims)
    test_ids = set()
    for i in order:
        if len(test_ids) == n_test:
            break
        if claims[i]["campaign"] != "campaign-0":
            test_ids.add(i)
    out = []
    for i, c in enumerate(claims):
        split = "test" if i in test_ids else "forget" if c["campaign"] == "campaign-0" else "retain"
        out.append(
            {
                "id": f"claim-{i:04d}",
                "text": c["text"],
                "label": c["label"],
                "split": split,
                "campaign": c["campaign"],
            }
        )
    return out
