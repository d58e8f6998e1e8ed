"""Item text cleaning (DESIGN §2): HTML entities unescaped, whitespace collapsed; empty text is allowed."""
from __future__ import annotations

import html


def clean_text(text: str | None) -> str:
    """`'Salt &amp;  Pepper\\n'` -> `'Salt & Pepper'`; None -> `''`."""
    if text is None:
        return ""
    return " ".join(html.unescape(text).split())
