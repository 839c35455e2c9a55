"""Which facts a model already knows: greedy answers to the first wording of each probe.

Real-knowledge probes are only meaningful for facts the model had before the study (a probe
it never answered right cannot be forgotten), so the country data keeps an attribute of a
country only when the model answers its first training question exactly (SQuAD-normalised
exact match, the study's `em_*` metric).
"""

from quail.data.render import format_question
from quail.evaluation.lm import greedy_continuations
from quail.evaluation.metrics import first_line
from quail.evaluation.scoring import exact_match


def known_attributes(
    model, tokenizer, countries: list[dict], template: str, batch_size: int = 32
) -> dict[str, dict[str, str]]:
    """Country name -> the attributes (name -> value) the model answers correctly."""
    from quail.countries.facts import QUESTIONS

    probes = [
        (c["name"], attr, value, format_question(QUESTIONS[attr][0].format(n=c["name"]), template))
        for c in countries
        for attr, value in c["attributes"].items()
    ]
    # Greedy answers share their prefix, so one that is complete within 8 tokens is also what
    # the 16-token metric reads: a kept probe is one the study's em_* metric counts as right.
    answers = greedy_continuations(
        model,
        tokenizer,
        [p[3] for p in probes],
        max_new_tokens=8,
        batch_size=batch_size,
        first_line_only=True,
    )
    known: dict[str, dict[str, str]] = {c["name"]: {} for c in countries}
    for (name, attr, value, _), answer in zip(probes, answers, strict=True):
        if exact_match(first_line(answer), value):
            known[name][attr] = value
    return known
