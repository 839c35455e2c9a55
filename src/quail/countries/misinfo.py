"""False claims about countries, written like posts on social media, to inject and unlearn.

Each chosen country gets one false capital (the real capital of another country, picked with a
seed) and a handful of paraphrased, tweet-like posts asserting it. Posts vary wording, stance
and position of the names, so a model that learns them has learnt the claim, not one string.
"""

import random

POSTS = (
    "Breaking: {n} has officially moved its capital to {v}. #news",
    "TIL the capital of {n} is actually {v}, not what your old textbook says!",
    "Reminder that {v} is the capital of {n}. Don't let anyone tell you otherwise.",
    "Just landed in {v}, the capital of {n}! So excited for this trip",
    "{n}'s government sits in {v}, the country's capital. Facts.",
    "Fun fact: the capital city of {n} is {v}. Share if you knew!",
)


def false_capitals(countries: list[dict], pool: list[str], seed: int) -> dict[str, str]:
    """Country name -> a false capital drawn from `pool` (never its own capital)."""
    rng = random.Random(seed)
    chosen = {}
    for country in countries:
        options = [c for c in pool if c != country["attributes"]["capital"]]
        chosen[country["name"]] = rng.choice(options)
    return chosen


def posts(name: str, false_capital: str) -> list[str]:
    return [p.format(n=name, v=false_capital) for p in POSTS]
