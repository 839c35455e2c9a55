"""General English text for the retain set, available offline: prose paragraphs of the Python
language reference that ships with every Python (`pydoc_data.topics`). They are not about
countries, so training on them keeps the model's general language from drifting during
injection and unlearning, and their perplexity measures that. The text follows the Python
version that builds the data (recorded in the manifest).
"""

TOPICS = (
    "exceptions", "execmodel", "naming", "objects", "types", "truth", "numbers", "import",
    "compound", "class", "function", "context-managers", "dynamic-features", "customization",
)  # fmt: skip


def general_passages(count: int, min_chars: int = 150, max_chars: int = 600) -> list[str]:
    """Up to `count` prose paragraphs (code and lists skipped), taken from TOPICS in turn."""
    from pydoc_data.topics import topics

    per_topic = []
    for name in TOPICS:
        paragraphs = []
        for block in topics.get(name, "").split("\n\n"):
            if block[:1].isspace() or block.lstrip().startswith(("*", "-", ">>>")):
                continue
            text = " ".join(block.split())
            if min_chars <= len(text) <= max_chars and text.endswith("."):
                paragraphs.append(text)
        per_topic.append(paragraphs)
    out = []
    for i in range(max(map(len, per_topic), default=0)):
        out += [p[i] for p in per_topic if i < len(p)]
    return out[:count]
