"""Turning whatever a person types into a safe FTS5 query.

FTS5 has its own syntax (quotes, AND/OR/NOT/NEAR, column filters, `*`, `^`); raw input with a stray
quote or operator is a syntax error. Each word becomes a quoted term, so all words must match, and
the last one also matches as a prefix, as search-as-you-type expects.
"""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 32


def to_fts_query(text: str) -> str:
    if not isinstance(text, str):
        return ""
    normalized = unicodedata.normalize("NFKC", text)
    words = WORD.findall(normalized)[:MAX_TERMS]
    if not words:
        return ""
    terms = [f'"{w}"' for w in words]  # \w+ holds no quote, so no escaping is needed
    terms[-1] += "*"
    return " ".join(terms)
