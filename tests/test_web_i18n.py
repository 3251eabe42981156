"""The translation table is complete, every text a page or script asks for exists, and the
language is chosen as documented."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.web import i18n

WEB = Path(i18n.__file__).parent
TEMPLATE_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']""")
# t("a." ~ x) in a template, or t("a." + x) in a script: a family of keys.
TEMPLATE_FAMILY = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+[._])["']\s*[~+]""")
SCRIPT_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(i18n.TEXT))
def test_every_text_has_both_languages_with_the_same_placeholders(key):
    danish, english = i18n.TEXT[key]
    assert danish.strip() and english.strip()
    assert placeholders(danish) == placeholders(english)


def used_keys(pattern: re.Pattern, files: list[Path]) -> set[str]:
    return {m for f in files for m in pattern.findall(f.read_text())}


def test_every_key_the_templates_use_exists():
    files = list((WEB / "templates").rglob("*.html"))
    assert files
    families = used_keys(TEMPLATE_FAMILY, files)
    missing = used_keys(TEMPLATE_KEY, files) - set(i18n.TEXT) - families
    assert not missing
    for family in used_keys(TEMPLATE_FAMILY, files):
        assert any(k.startswith(family) for k in i18n.TEXT), family


def test_every_key_the_scripts_use_exists():
    files = list((WEB / "static" / "js").glob("*.js"))
    assert files
    missing = used_keys(SCRIPT_KEY, files) - set(i18n.TEXT) - used_keys(TEMPLATE_FAMILY, files)
    assert not missing


def test_no_text_is_written_into_a_template_outside_the_table():
    # A word between tags that does not come from t() would be shown in one language only.
    for f in (WEB / "templates").rglob("*.html"):
        html = re.sub(r"{% block body_class %}\w*{% endblock %}", " ", f.read_text())
        html = re.sub(r"{{.*?}}|{%.*?%}|<[^>]+>", " ", html, flags=re.S)
        words = [w for w in re.findall(r"[A-Za-zÆØÅæøå]{3,}", html)]
        assert not words, f"{f.name}: {words[:5]}"


def test_the_switch_wins_then_the_cookie_then_the_browser_then_danish():
    assert i18n.negotiate("en", "da", "da") == "en"
    assert i18n.negotiate(None, "en", "da") == "en"
    assert i18n.negotiate("xx", "en", "da") == "en"
    assert i18n.negotiate(None, None, "en-US,en;q=0.9") == "en"
    assert i18n.negotiate(None, None, "de-DE,de;q=0.9") == "da"
    assert i18n.negotiate(None, None, "sv-SE,en;q=0.5") == "da"
    assert i18n.negotiate(None, None, None) == "da"


def test_accept_language_weights_and_refusals():
    assert i18n.accepted("da;q=0.5, en;q=0.9") == ["en", "da"]
    assert i18n.accepted("en;q=0, da") == ["da"]
    assert i18n.accepted("fr, en;q=nonsense") == ["fr"]
    assert i18n.negotiate(None, None, "en;q=0, da;q=0.1") == "da"


@given(st.text(max_size=200))
def test_any_accept_language_header_gives_a_supported_language(header):
    assert i18n.negotiate(None, None, header) in i18n.LANGUAGES


def test_translate_fills_placeholders_in_either_language():
    assert i18n.translate("da", "app.signed_in_as", name="Hanne") == "Logget ind som Hanne"
    assert i18n.translate("en", "app.signed_in_as", name="Hanne") == "Signed in as Hanne"
    texts = i18n.for_script("en", ("wound.",))
    assert texts and all(k.startswith("wound.") for k in texts)
    assert texts["wound.created"] == i18n.TEXT["wound.created"][1]
