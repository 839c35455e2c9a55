"""General English text, available offline: prose paragraphs of the Python language reference
that ships with every Python (`pydoc_data.topics`). They are not about countries. Paragraphs of
TOPICS go into the retain set (training on them keeps the model's general language from
drifting during injection and unlearning); paragraphs of the other topics, minus any that
also appear under TOPICS (sections repeat across topics), are held out, never trained on, and
their perplexity measures general utility. The text follows the Python version that builds
the data (recorded in the manifest).
"""

TOPICS = (
    "exceptions", "execmodel", "naming", "objects", "types", "truth", "numbers", "import",
    "compound", "class", "function", "context-managers", "dynamic-features", "customization",
)  # fmt: skip


def _paragraphs(topic: str, min_chars: int = 150, max_chars: int = 600) -> list[str]:
    """The topic's prose paragraphs (code and lists skipped), whitespace collapsed."""
    from pydoc_data.topics import topics

    paragraphs = []
    for block in topics.get(topic, "").split("\n\n"):
        if block[:1].isspace() or block.lstrip().startswith(("*", "-", ">>>")):
            continue
        text = " ".join(block.split())
        if min_chars <= len(text) <= max_chars and text.endswith("."):
            paragraphs.append(text)
    return paragraphs


def _in_turn(per_topic: list[list[str]], count: int) -> list[str]:
    """The first paragraph of each topic, then the second of each, ...: up to `count`, each
    paragraph once (a section of the reference can appear under several topics)."""
    out: dict[str, None] = {}
    for i in range(max(map(len, per_topic), default=0)):
        out.update((p[i], None) for p in per_topic if i < len(p))
    return list(out)[:count]


def general_passages(count: int) -> list[str]:
    """Up to `count` paragraphs of TOPICS, taken from each topic in turn (the retain text)."""
    return _in_turn([_paragraphs(name) for name in TOPICS], count)


def heldout_passages(count: int) -> list[str]:
    """Up to `count` paragraphs of the other topics, in turn, none of which is a paragraph of
    TOPICS: general text the model is never trained on."""
    from pydoc_data.topics import topics

    trained = {text for name in TOPICS for text in _paragraphs(name)}
    others = sorted(set(topics) - set(TOPICS))
    return _in_turn([[t for t in _paragraphs(n) if t not in trained] for n in others], count)
