"""Streaming detokenization in constant time per token.

Each token id maps to the bytes it stands for (sentencepiece pieces with '▁' as a space and
<0xNN> byte-fallback pieces; byte-level BPE through GPT-2's byte alphabet). An incremental UTF-8
decoder holds back incomplete characters, so every chunk is valid text and a multi-byte character
split over several tokens appears once it is whole. The cost per token does not depend on how much
text came before, unlike re-decoding the whole line on every token.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

SPM_SPACE = "\u2581"
BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def gpt2_byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable stand-ins back to their byte values."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def spm_piece_bytes(piece: str) -> bytes:
    match = BYTE_PIECE.match(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace(SPM_SPACE, " ").encode("utf-8")


def byte_level_piece_bytes(piece: str) -> bytes:
    decoder = gpt2_byte_decoder()
    try:
        return bytes(decoder[c] for c in piece)
    except KeyError:  # an added token written as plain text
        return piece.encode("utf-8")


class StreamingDetokenizer:
    """Turns token ids into text chunks; `add` returns the new text (possibly empty)."""

    def __init__(self, token_bytes: list[bytes], strip_leading_space: bool) -> None:
        self._token_bytes = token_bytes
        self._strip_leading_space = strip_leading_space
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._started = False

    def add(self, token_id: int) -> str:
        data = self._token_bytes[token_id] if 0 <= token_id < len(self._token_bytes) else b""
        return self._trim(self._decoder.decode(data))

    def flush(self) -> str:
        """The text of an incomplete trailing character, if any (as replacement characters)."""
        return self._trim(self._decoder.decode(b"", final=True))

    def _trim(self, text: str) -> str:
        # Sentencepiece's dummy prefix gives the first word a leading space that decode() drops.
        if text and not self._started:
            self._started = True
            if self._strip_leading_space and text[0] == " ":
                text = text[1:]
        return text
