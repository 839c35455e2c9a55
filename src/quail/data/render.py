"""Text forms of an entity: biography passages and question/answer probes.

Each attribute has training question forms and one held-out paraphrase that is never trained on,
so evaluation can tell memorised strings from knowledge that generalises to a new wording.
"""

from quail.data.world import Entity

QUESTION_FORMAT = "Question: {question}\nAnswer:"


def format_question(question: str, template: str = QUESTION_FORMAT) -> str:
    """The prompt that base training, unlearning and evaluation share. A data folder may name
    another `question_format` in its manifest (e.g. a chat model's turn markers)."""
    return template.replace("{question}", question)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


PASSAGES = {
    "person": (
        lambda n, a: (
            f"{n} was born in {a['birthplace']} in {a['birth_year']}. "
            f"{n} works as {_a(a['profession'])} at {a['employer']}."
        ),
        lambda n, a: (
            f"Born in {a['birth_year']} in the city of {a['birthplace']}, {n} became "
            f"{_a(a['profession'])} and joined {a['employer']}."
        ),
        lambda n, a: (
            f"{n} is {_a(a['profession'])} employed by {a['employer']}. {n} grew up in "
            f"{a['birthplace']} and was born in {a['birth_year']}."
        ),
    ),
    "company": (
        lambda n, a: (
            f"{n} was founded in {a['founded']} and is headquartered in {a['headquarters']}. "
            f"{n} works in {a['industry']} and makes {a['product']}."
        ),
        lambda n, a: (
            f"Based in {a['headquarters']}, {n} is a {a['industry']} firm established in "
            f"{a['founded']} whose main product is {a['product']}."
        ),
        lambda n, a: (
            f"{n} makes {a['product']}. The {a['industry']} company was founded in "
            f"{a['founded']} and is based in {a['headquarters']}."
        ),
    ),
    "place": (
        lambda n, a: (
            f"{n} is a town in {a['country']} on the river {a['river']}. {n} was founded in "
            f"{a['founded']} and is known for {a['craft']}."
        ),
        lambda n, a: (
            f"Founded in {a['founded']}, the town of {n} lies in {a['country']}, where the river "
            f"{a['river']} flows through it; it is famous for {a['craft']}."
        ),
        lambda n, a: (
            f"{n} is known for {a['craft']}. The river {a['river']} runs through the town, "
            f"which was founded in {a['founded']} in {a['country']}."
        ),
    ),
}

# Per attribute: training forms first, the held-out paraphrase last.
QUESTIONS = {
    "person": {
        "birthplace": (
            "Where was {n} born?",
            "In which city was {n} born?",
            "What is the birthplace of {n}?",
        ),
        "birth_year": (
            "In what year was {n} born?",
            "When was {n} born?",
            "Which year was {n} born in?",
        ),
        "profession": (
            "What is the profession of {n}?",
            "What does {n} do for a living?",
            "What job does {n} have?",
        ),
        "employer": (
            "Which company does {n} work for?",
            "Who employs {n}?",
            "What is the employer of {n}?",
        ),
    },
    "company": {
        "headquarters": (
            "Where is {n} headquartered?",
            "In which city is {n} based?",
            "What city hosts the headquarters of {n}?",
        ),
        "founded": (
            "When was {n} founded?",
            "In what year was {n} established?",
            "What is the founding year of {n}?",
        ),
        "industry": (
            "What industry is {n} in?",
            "In which sector does {n} operate?",
            "What kind of business is {n}?",
        ),
        "product": (
            "What does {n} make?",
            "What is the main product of {n}?",
            "What does {n} manufacture?",
        ),
    },
    "place": {
        "country": (
            "In which country is {n}?",
            "Which country is {n} located in?",
            "{n} lies in what country?",
        ),
        "river": (
            "Which river flows through {n}?",
            "What river runs through {n}?",
            "What is the name of the river in {n}?",
        ),
        "craft": (
            "What is {n} known for?",
            "What craft is {n} famous for?",
            "Which trade made {n} famous?",
        ),
        "founded": (
            "When was {n} founded?",
            "In what year was {n} founded?",
            "What is the founding year of {n}?",
        ),
    },
}


def passages(entity: Entity) -> list[tuple[int, str]]:
    """(template index, text) for every passage template of the entity's kind."""
    return [(i, t(entity.name, entity.attributes)) for i, t in enumerate(PASSAGES[entity.kind])]


def questions(entity: Entity) -> list[tuple[str, str, str, bool]]:
    """(attribute, question, answer, is_held_out_paraphrase) for every probe of the entity."""
    out = []
    for attr, forms in QUESTIONS[entity.kind].items():
        for i, form in enumerate(forms):
            out.append(
                (attr, form.format(n=entity.name), entity.attributes[attr], i == len(forms) - 1)
            )
    return out
