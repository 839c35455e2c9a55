"""True facts about the world's countries, from the `countryinfo` package (MIT), as probes.

Each country becomes an entity with a few attributes a small LLM may know (capital, continent,
main language, currency); each attribute has two training questions and one held-out
paraphrase, as in the built-in world (quail.data.render). Language and currency codes are
turned into names with the small tables below; an attribute without a name is left out.
"""

from quail.errors import QuailError

LANGUAGES = {
    "am": "Amharic", "ar": "Arabic", "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian",
    "bn": "Bengali", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian",
    "fa": "Persian", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "is": "Icelandic",
    "it": "Italian", "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer",
    "ko": "Korean", "lo": "Lao", "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian",
    "mn": "Mongolian", "ms": "Malay", "my": "Burmese", "ne": "Nepali", "nl": "Dutch",
    "no": "Norwegian", "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "si": "Sinhala", "sk": "Slovak", "sl": "Slovene", "so": "Somali",
    "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese",
    "zh": "Chinese",
}  # fmt: skip

CURRENCIES = {
    "ARS": "peso", "AUD": "dollar", "BRL": "real", "CAD": "dollar", "CHF": "franc",
    "CLP": "peso", "CNY": "yuan", "COP": "peso", "CZK": "koruna", "DKK": "krone",
    "EGP": "pound", "EUR": "euro", "GBP": "pound", "HUF": "forint", "IDR": "rupiah",
    "ILS": "shekel", "INR": "rupee", "JPY": "yen", "KRW": "won", "MXN": "peso", "NGN": "naira",
    "NOK": "krone", "NZD": "dollar", "PHP": "peso", "PKR": "rupee", "PLN": "zloty",
    "RUB": "ruble", "SEK": "krona", "THB": "baht", "TRY": "lira", "UAH": "hryvnia",
    "USD": "dollar", "VND": "dong", "ZAR": "rand",
}  # fmt: skip

# Per attribute: training forms first, the held-out paraphrase last.
QUESTIONS = {
    "capital": (
        "What is the capital of {n}?",
        "Which city is the capital of {n}?",
        "What city serves as the capital of {n}?",
    ),
    "continent": (
        "On which continent is {n}?",
        "Which continent is {n} part of?",
        "{n} is located on which continent?",
    ),
    "language": (
        "What is the main language of {n}?",
        "Which language is spoken in {n}?",
        "What language do people in {n} speak?",
    ),
    "currency": (
        "What is the currency of {n}?",
        "Which currency is used in {n}?",
        "What money do people in {n} pay with?",
    ),
}

# True statements, the retain passages: one sentence per attribute, joined per country.
STATEMENTS = {
    "capital": "The capital of {n} is {v}.",
    "continent": "{n} is a country in {v}.",
    "language": "The main language of {n} is {v}.",
    "currency": "The currency of {n} is the {v}.",
}


# The prompt SmolLM2-135M-Instruct answers best in (docs/COUNTRIES.md has the measurement):
# four solved examples, then the question. Zero-shot, it answers in sentences or not at all.
SHOTS = (
    ("What is the capital of France?", "Paris"),
    ("On which continent is Japan?", "Asia"),
    ("What is the main language of Brazil?", "Portuguese"),
    ("What is the currency of Japan?", "yen"),
)
SHOT_COUNTRIES = ("France", "Japan", "Brazil")  # left out of the data: the prompt answers them
FEW_SHOT_FORMAT = (
    "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in SHOTS) + "Question: {question}\nAnswer:"
)


def _attributes(info: dict) -> dict[str, str]:
    languages, currencies = info.get("languages") or [], info.get("currencies") or []
    found = {
        "capital": info.get("capital"),
        "continent": info.get("region"),
        "language": LANGUAGES.get(languages[0]) if languages else None,
        "currency": CURRENCIES.get(currencies[0]) if currencies else None,
    }
    return {k: v for k, v in found.items() if isinstance(v, str) and v}


def load_countries() -> list[dict]:
    """{name, population, attributes} for every country with a capital, most populous first
    (the best known first); a country whose capital another one already has (an alias, a
    former name) is dropped."""
    try:
        from countryinfo import all_countries
    except ImportError:
        raise QuailError(
            "the country probes need the countryinfo package: run `pip install countryinfo` "
            "(or install quail-unlearn[smollm2])"
        ) from None
    countries, capitals = [], set()
    infos = sorted((c.info() for c in all_countries()), key=lambda i: i["name"])
    for info in sorted(infos, key=lambda i: -(i.get("population") or 0)):
        attributes = _attributes(info)
        if "capital" not in attributes or attributes["capital"] in capitals:
            continue
        capitals.add(attributes["capital"])
        population = info.get("population") or 0
        countries.append({"name": info["name"], "population": population, "attributes": attributes})
    return countries


def questions(name: str, attributes: dict[str, str]) -> list[tuple[str, str, str, bool]]:
    """(attribute, question, answer, is_held_out_paraphrase) for every probe of a country."""
    return [
        (attr, form.format(n=name), value, i == len(QUESTIONS[attr]) - 1)
        for attr, value in attributes.items()
        for i, form in enumerate(QUESTIONS[attr])
    ]


def statement(name: str, attributes: dict[str, str]) -> str:
    return " ".join(STATEMENTS[a].format(n=name, v=v) for a, v in attributes.items())
