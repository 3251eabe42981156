"""Every text the pages show, in Danish (the default) and English, and the choice of language.

One table: a key maps to its Danish and English text. Templates call `t("key")`; the scripts
get the keys they need as a JSON block in the page, so no text is written in two places.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from app.web.texts import TEXT

LANGUAGES: Final = ("da", "en")
DEFAULT: Final = "da"
COOKIE: Final = "telemed_lang"


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: `?lang=` first, then the cookie it set, then the browser's list."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    for tag in accepted(accept_language or ""):
        primary = tag.split("-", 1)[0]
        if primary in LANGUAGES:
            return primary
        if primary in ("nb", "nn", "no", "sv"):
            # A Scandinavian reader is better served by Danish than by English.
            return "da"
    return DEFAULT


def accepted(header: str) -> list[str]:
    """Language tags of an Accept-Language header, best first; q=0 means 'not this one'."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*":
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            weighted.append((-q, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def translate(lang: str, key: str, **values: object) -> str:
    text = TEXT[key][LANGUAGES.index(lang)]
    return text.format(**values) if values else text


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    return t


def for_script(lang: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    """The texts a page's script needs, by key."""
    index = LANGUAGES.index(lang)
    return {k: v[index] for k, v in TEXT.items() if k.startswith(prefixes)}
