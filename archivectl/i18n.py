"""The interface's language: English msgids, Simplified Chinese from a gettext catalog.

Every user-facing string is written in English and passed through `_()` (or
`ngettext`); the catalog `archivectl/locale/zh_CN/LC_MESSAGES/archivectl.mo`
gives the Chinese. The language is chosen once per process: `set_language()`
(archive.yaml `language:`), else ARCHIVECTL_LANG, else the locale
(LANGUAGE, LC_ALL, LC_MESSAGES, LANG). Archive data and trailers never pass
through here: they stay language-neutral.
"""

from __future__ import annotations

import gettext
import os
from pathlib import Path

DOMAIN = "archivectl"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh_CN")

_translation: gettext.NullTranslations | None = None
_language: str | None = None


def _from_environment() -> str:
    for name in ("ARCHIVECTL_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return normalise(value.split(":")[0])
    return "en"


def normalise(value: str) -> str:
    """A locale name as the catalogs are named: zh_CN.UTF-8, zh-CN, zh -> zh_CN; anything else -> en."""
    base = value.split(".")[0].split("@")[0].replace("-", "_")
    return "zh_CN" if base.lower() in ("zh", "zh_cn", "zh_hans", "zh_sg") else "en"


def language() -> str:
    """The language this process speaks."""
    global _language
    if _language is None:
        _language = _from_environment()
    return _language


def set_language(value: str | None) -> None:
    """Speak this language from now on (None: back to the environment's)."""
    global _language, _translation
    _language = normalise(value) if value else None
    _translation = None


def _catalog() -> gettext.NullTranslations:
    global _translation
    if _translation is None:
        lang = language()
        if lang == "en":
            _translation = gettext.NullTranslations()
        else:
            _translation = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
    return _translation


def _(message: str) -> str:
    """The message in the interface's language."""
    return _catalog().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural message for n, in the interface's language."""
    return _catalog().ngettext(singular, plural, n)
