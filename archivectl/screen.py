"""What a person's screen shows of clear text typed by someone else: inert, never acting on the terminal.

A clear field (a repair summary, a reason, a subject) reaches the approver's
terminal. Raw, an escape sequence could erase or rewrite what they are about to
sign, a bidirectional override could reorder it, a carriage return could hide it.
Every clear value printed in a table, a list of changes or a report goes through
`inert`: control characters (C0, DEL, C1), bidi controls and invisible format
characters are shown as visible escapes (`\\x1b`, `\\u202e`), and nothing else changes.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline too: a value is shown on its line), DEL, C1 controls; the Arabic letter
# mark, zero-width and direction marks, bidi embeddings/overrides/isolates, word joiners, the BOM.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")  # json escapes C0


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(value: object) -> str:
    """value as text, with every character that could act on a terminal or reorder a line shown as an escape."""
    text = value if isinstance(value, str) else str(value)
    return UNSAFE.sub(_visible, text) if UNSAFE.search(text) else text


def inert_json(text: str) -> str:
    """JSON text (as json.dumps writes it) with the same characters written as JSON escapes: equal data."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def unsafe_in(text: str) -> str | None:
    """The first character a clear text field may not hold, shown as an escape; None when there is none."""
    found = UNSAFE.search(text)
    return _visible(found) if found else None
