"""What a fastText classifier sees of a normalised text (`filters.classifier.normalize`): every
token (`all_tokens`), or only its content words (`content_words_v1`), optionally with a length
token. A model's view is part of its training config and is applied again when it scores.

`content_words_v1` is for topic classifiers trained on sources whose *style* differs by label
(the domain recipe: terse Reuters wires are all financial, Wikipedia and web pages all general).
fastText's document vector is the mean of its tokens' vectors, so with every token the most
frequent ones (".", "the", quotes, digits) carry the source's style into the score: on BBC
News, "." "the" "'" '"' pushed business articles towards `general` more than any topical word.
Content words drop punctuation, numbers and English stop words, and spell money and percent
units one way ("pct", "per cent", "%" -> "%"; "dlrs", "£", "€", "stg" -> "$"; "mln", "0 m" ->
"million"; "bn" -> "billion"), so "a number of pounds" means the same in every source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, get_args

Features = Literal["all_tokens", "content_words_v1"]
FEATURES = get_args(Features)

# NLTK's English stop words without its contraction pieces ("don", "m", "ll"), plus news text's
# reporting verbs and titles
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves said says say mr mrs ms also s t
""".split())

_UNITS = {"pct": "%", "percent": "%", "mln": "million", "bn": "billion", "dlrs": "$", "dlr": "$", "£": "$",
          "€": "$", "stg": "$", "usd": "$", "cts": "cents"}
_SYMBOLS = frozenset("%$")
_WORD = re.compile(r"[^\W\d_]")


def content_words(normalized: str) -> str:
    """The content words of a normalised text, money and percent units in one spelling."""
    text = f" {normalized} ".replace(" per cent ", " % ").replace(" 0 m ", " 0 million ")
    words = (_UNITS.get(token, token) for token in text.split())
    return " ".join(w for w in words if w in _SYMBOLS or (_WORD.match(w) and w not in STOP_WORDS))


def with_length_token(text: str) -> str:
    """`text` plus a token naming its length bucket (log2 of its token count): fastText
    averages token vectors and cannot see length, yet a one-word line is rarely content."""
    return f"{text} __len{min(len(text.split()), 1023).bit_length()}"


def feature_view(features: str = "all_tokens", length_token: bool = False) -> Callable[[str], str]:
    """normalised text -> the text fastText trains on and scores."""
    if features not in FEATURES:
        raise ValueError(f"features {features!r} is unknown; one of {list(FEATURES)}")
    words = content_words if features == "content_words_v1" else str
    return (lambda text: with_length_token(words(text))) if length_token else words
