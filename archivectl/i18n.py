"""The interface's language: English msgids, Simplified Chinese from a gettext catalog.

Every user-facing string is written in English and passed through `_()` (or
`ngettext`); the catalog `archivectl/locale/zh_CN/LC_MESSAGES/archivectl.mo`
(compiled from the .po when the package is built or installed) gives the
Chinese. The language, first match wins:

1. ARCHIVECTL_LANG (zh_CN or en), for one person or one script;
2. archive.yaml `language:` of the archive the command works on;
3. the locale: LC_ALL, LC_MESSAGES, LANG (and LANGUAGE, unless the locale is C).

`choose_at_start()` decides it before the command line's help texts are made
(they are read at import); `use_archive_language()` again once the archive is
found. Archive data and trailers never pass through here: they stay
language-neutral.
"""

from __future__ import annotations

import gettext
import os
import re
from pathlib import Path

DOMAIN = "archivectl"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "zh_CN")
ARCHIVE_FILE = "archive.yaml"  # layout.ARCHIVE_FILE; not imported, so `--help` reads no more modules

_translation: gettext.NullTranslations | None = None
_language: str | None = None
_LANGUAGE_LINE = re.compile(r"^language:[ \t]*['\"]?([A-Za-z_.@-]+)['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)


def _from_locale() -> str:
    """The locale's language as gettext reads it: LC_ALL, LC_MESSAGES, LANG; LANGUAGE unless that is C."""
    locale = next((os.environ[n] for n in ("LC_ALL", "LC_MESSAGES", "LANG") if os.environ.get(n)), "")
    if locale.split(".")[0] in ("", "C", "POSIX"):
        return "en"
    first = os.environ.get("LANGUAGE", "").split(":")[0]
    return normalise(first or locale)


def _from_environment() -> str:
    explicit = os.environ.get("ARCHIVECTL_LANG", "")
    return normalise(explicit) if explicit else _from_locale()


def normalise(value: str) -> str:
    """A locale name as the catalogs are named: zh_CN.UTF-8, zh-CN, zh -> zh_CN; anything else -> en."""
    base = value.split(".")[0].split("@")[0].replace("-", "_")
    return "zh_CN" if base.lower() in ("zh", "zh_cn", "zh_hans", "zh_sg", "zh_hans_cn") else "en"


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


def archive_language(text: str) -> str | None:
    """The `language:` an archive.yaml's text declares at its top level, or None."""
    found = _LANGUAGE_LINE.search(text)
    return found.group(1) if found else None


def use_archive_language(declared: str | None) -> None:
    """Speak what the archive declares, unless ARCHIVECTL_LANG says otherwise (None: the environment's)."""
    set_language(os.environ.get("ARCHIVECTL_LANG") or declared or None)


def _archive_named(argv: list[str]) -> str | None:
    """--archive PATH (or --archive=PATH) from a command line, else ARCHIVECTL_ARCHIVE."""
    for i, arg in enumerate(argv):
        if arg == "--archive" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--archive="):
            return arg.split("=", 1)[1]
    return os.environ.get("ARCHIVECTL_ARCHIVE") or None


def choose_at_start(argv: list[str]) -> None:
    """Decide the language before the command line is built: the archive's archive.yaml is only peeked at.

    Found the way Archive.find looks (the named directory, or upward from
    here), read as text without a YAML parser or git, so `--help` stays fast;
    the command itself decides again from the archive it opens.
    """
    if os.environ.get("ARCHIVECTL_LANG"):
        set_language(None)
        return
    named = _archive_named(argv)
    start = Path(named).expanduser() if named else Path.cwd()
    try:
        for candidate in [start] if named else [start, *start.resolve().parents]:
            path = candidate / ARCHIVE_FILE
            if path.is_file():
                use_archive_language(archive_language(path.read_text(encoding="utf-8", errors="replace")[:65536]))
                return
    except OSError:
        pass
    set_language(None)


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


def N_(message: str) -> str:
    """Mark a message for the catalog without translating it yet (it is translated where it is shown)."""
    return message
