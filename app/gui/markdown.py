"""Model output (untrusted Markdown) to safe HTML for Qt's rich text, whole or while streaming.

Safety: the text comes from a model, so it is treated as hostile.
- Raw HTML is disabled in the parser: `<script>`, `<img ...>`, `<iframe>` arrive as visible text.
- Links keep only http(s) and mailto targets; any other (javascript:, file:, data:, relative) is
  not a link at all and shows as the literal Markdown text. Clicks are the app's decision (the
  transcript's TextEdit reports linkActivated; nothing opens by itself).
- Images are never emitted as `<img>`: `![alt](url)` shows the alt text and the URL as a link,
  so rendering never fetches anything.
- Autolinking of bare URLs ("linkify") is off.

Qt's rich text understands a subset of HTML/CSS (no padding on blocks, no borders on paragraphs),
so the styling below uses what it does support: tables for padded boxes and bars, inline styles
(Pygments' `noclasses`), font-size keywords that scale with the document's font.

Public API:
- `render(text, dark=False) -> str`: the whole message as HTML.
- `code_blocks(text) -> list[str]`: the exact code of each code block; `copy:<n>` links index it.
- `StreamingRenderer`: incremental rendering for a growing answer (see its docstring).
- `measure(...)`: a small benchmark (not used by tests).
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, NamedTuple

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

# A top-level code fence is streamed in segments of about this many characters: Pygments needs a
# few milliseconds per thousand characters, so re-highlighting a whole long fence on every update
# would not fit a frame. Finished segments are never highlighted again.
FENCE_SEGMENT_CHARS = 600

MONOSPACE = "'SF Mono', Menlo, Monaco, Consolas, 'DejaVu Sans Mono', 'Liberation Mono', monospace"

_SAFE_LINK = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CLOSING_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
# Headings kept modest: a chat answer's "# Title" should not shout. Qt maps these keywords to
# sizes relative to the document's default font, so the app's font size setting still applies.
_HEADING_SIZES = {"h1": "x-large", "h2": "large"}


@dataclass(frozen=True)
class _Theme:
    code_bg: str
    inline_code_bg: str
    table_border: str
    quote_bar: str
    muted: str
    link: str
    pygments_style: str


# GitHub's palette, familiar to most readers of code; Pygments styles that suit each background.
LIGHT = _Theme(code_bg="#f6f8fa", inline_code_bg="#eaeef2", table_border="#afb8c1",
               quote_bar="#d0d7de", muted="#57606a", link="#0969da", pygments_style="default")
DARK = _Theme(code_bg="#161b22", inline_code_bg="#343942", table_border="#545d68",
              quote_bar="#444c56", muted="#8b949e", link="#4493f8", pygments_style="github-dark")


@dataclass
class RenderStats:
    """Characters handed to markdown-it (parsed) and to Pygments (highlighted)."""

    parsed_chars: int = 0
    highlighted_chars: int = 0


# ---------------------------------------------------------------------------------------------
# Whole-message rendering


def render(text: str, *, dark: bool = False) -> str:
    """The whole message as HTML for Qt rich text (a QML TextEdit, QTextDocument.setHtml)."""
    md = _markdown(dark)
    env = _env(code_index=0, stats=RenderStats(), references={})
    tokens = _parse(md, text, env)
    return md.renderer.render(tokens, md.options, env).rstrip("\n")


def warm_up() -> None:
    """Do now what the first answer with Python code would otherwise do in a visible stall of
    70-150 ms: compile Pygments' Python lexer rules, set up both themes' parsers and formatters.
    Safe on a worker thread (the caches are filled once; a race only repeats the work)."""
    for dark in (False, True):
        render("```python\npass\n```", dark=dark)


def code_blocks(text: str) -> list[str]:
    """The exact code of every code block (fenced or indented), in document order.

    Index n matches the `copy:<n>` link above that block in `render(text)` (and in the
    streamed pieces), so the app copies this text rather than scraping the displayed HTML.
    The final line break is left off, so a pasted shell command does not run by itself.
    """
    tokens = _markdown(False).parse(text)
    return [_strip_one_newline(t.content) for t in tokens if t.type in ("fence", "code_block")]


# ---------------------------------------------------------------------------------------------
# Streaming


class StreamUpdate(NamedTuple):
    """What one `StreamingRenderer.update` changed.

    stable: how many finished pieces exist now (only grows; handy for sanity checks).
    finished_html: HTML of the pieces finished by this update, to append once, for good.
    tail_html: HTML of the unfinished rest; it replaces the previous tail entirely.
    """

    stable: int
    finished_html: str
    tail_html: str


@dataclass
class _OpenFence:
    """A top-level code fence being streamed in segments (see FENCE_SEGMENT_CHARS)."""

    marker: str  # "`" or "~"
    length: int  # a closing fence needs at least this many markers
    lang: str
    started: bool = False  # a segment was emitted already (only the first has top padding)


@dataclass
class _Line:
    start: int  # offset of the line in the pending text
    end: int  # offset after its line break
    complete: bool  # it has a line break (so later text cannot change this line)


class StreamingRenderer:
    """Renders a growing answer so each update costs about the size of its unfinished tail.

    The text is split into top-level blocks (paragraphs, lists, code blocks, tables...). A block
    is finished once the next top-level block has begun on a complete line (a table: once its
    delimiter row is complete too): CommonMark never reopens a closed block, so its HTML is
    rendered once, cached and never recomputed. Only the rest (the "tail": normally the last
    block) is parsed and rendered again on each update. An open code fence renders as code while
    it streams and keeps its `copy:<n>` number; a top-level fence is streamed line by line in
    segments (FENCE_SEGMENT_CHARS), so even a huge code block stays cheap.

    How a view uses it (one renderer per streamed message; the text only ever grows): on each
    update, `update = renderer.update(full_text)`; show `update.finished_html` once, for good (the
    transcript appends it as an item of its own, never laid out again), and replace the previous
    tail with `update.tail_html`. transcript_model.TranscriptModel does this.

    Pieces are concatenable HTML fragments: finished pieces + tail equals, in visible text,
    `render(full_text)`. `html()` gives that concatenation for a view that simply calls setHtml.
    Limits: a reference-style link used before its `[label]: url` definition arrives stays plain
    text in already finished blocks. A segmented fence is a stack of boxes that looks like one,
    but each segment is highlighted on its own (colours may differ across a seam) and Qt keeps an
    empty, zero-height block between them (an extra line break in toPlainText; "Copy" is exact).
    """

    def __init__(self, *, dark: bool = False) -> None:
        self._md = _markdown(dark)
        self._theme = DARK if dark else LIGHT
        self._done = 0  # chars of the text already turned into finished pieces
        self._pieces: list[str] = []
        self._tail = ""
        self._code_count = 0  # code blocks in finished pieces: the next copy:<n> number
        self._references: dict[str, Any] = {}  # [label]: url definitions from finished text
        self._fence: _OpenFence | None = None
        self._text = ""
        self.stats = RenderStats()  # work done by the last update (for tests and measure())

    def update(self, full_text: str) -> StreamUpdate:
        """Render the grown text; return what changed since the last update (see class doc)."""
        return self._advance(full_text, final=False)

    def finish(self, full_text: str | None = None) -> StreamUpdate:
        """Render whatever is left as finished pieces; the returned tail_html is empty."""
        return self._advance(self._text if full_text is None else full_text, final=True)

    def html(self) -> str:
        """All finished pieces plus the current tail."""
        return "".join(self._pieces) + self._tail

    @property
    def stable(self) -> int:
        """How many finished pieces there are."""
        return len(self._pieces)

    @property
    def pending_chars(self) -> int:
        """Characters of the text not yet in finished pieces: what the next update re-reads."""
        return len(self._text) - self._done

    # -- the work of one update

    def _advance(self, text: str, final: bool) -> StreamUpdate:
        if len(text) < self._done:
            raise ValueError("StreamingRenderer only follows growing text; make a new one")
        self._text = text
        self.stats = RenderStats()
        first_new = len(self._pieces)
        while True:
            if self._fence is not None:
                self._tail = self._advance_fence(text, final)
                if self._fence is not None:
                    break  # still inside the fence: its unfinished lines are the tail
            else:
                self._tail = self._advance_blocks(text, final)
                if self._fence is None:
                    break
        return StreamUpdate(len(self._pieces), "".join(self._pieces[first_new:]), self._tail)

    def _advance_blocks(self, text: str, final: bool) -> str:
        """Finish every top-level block that a later one has closed; return the tail's HTML."""
        base = self._done
        pending = text[base:]
        lines = _split_lines(pending)
        env = self._new_env(references=dict(self._references))
        tokens = _parse(self._md, pending, env)
        blocks = _top_level_blocks(tokens)
        complete = sum(1 for line in lines if line.complete)
        finished = len(blocks) if final else _closed_blocks(blocks, tokens, complete)
        for begin, end in blocks[:finished]:
            self._add(self._md.renderer.render(tokens[begin:end], self._md.options, env))
        self._code_count = env["code_index"]
        if final:
            self._done = len(text)
            return ""
        if finished:
            # Up to the end of the last finished block only: the lines after it may hold
            # [label]: url definitions whose title can still grow over the following lines.
            end_line = tokens[blocks[finished - 1][0]].map[1]
            self._keep_references(env, end_line)
            self._done = base + lines[end_line].start
        if finished == len(blocks):
            return ""
        tail = tokens[blocks[finished][0]]
        if self._enter_fence(tail, pending, lines[tail.map[0]], env):
            self._done = base + lines[tail.map[0]].end
            return ""  # _advance continues in fence mode with the fence's lines
        return self._md.renderer.render(tokens[blocks[finished][0]:], self._md.options,
                                        env).rstrip("\n")

    def _enter_fence(self, token: Token, pending: str, opener: _Line, env: dict[str, Any]) -> bool:
        """Stream a top-level fence line by line from here on; emit its header piece.

        Only when nothing can still change what its opener line means: the line is complete,
        unindented, has no "|" (with a delimiter row next it would be a table header), and no
        [label]: url definition before it is pending (a multi-line title could swallow it).
        """
        line = pending[opener.start:_line_end(pending, opener)]
        pending_refs = set(env.get("references", {})) - set(self._references)
        if (token.type != "fence" or not opener.complete or not line.startswith(token.markup)
                or "|" in line or pending_refs):
            return False
        self._fence = _OpenFence(token.markup[0], len(token.markup), _language(token.info))
        self._add(_code_header(self._code_count, self._fence.lang, self._theme))
        self._code_count += 1
        return True

    def _advance_fence(self, text: str, final: bool) -> str:
        """Stream an open fence: finished segments out, its unfinished lines as the tail."""
        fence = self._fence
        assert fence is not None
        pending = text[self._done:]
        lines = _split_lines(pending)
        closing = next((line for line in lines if _closes(pending, line, fence)), None)
        if closing is not None and closing.complete:
            self._emit_segment(pending[:closing.start], last=True)
            self._done += closing.end
            self._fence = None
            return ""
        body = _without_blank_partial_line(pending) if closing is None else pending[:closing.start]
        if final:
            self._emit_segment(body, last=True)
            self._done = len(text)
            self._fence = None
            return ""
        cut = self._emit_long_segment(pending, lines)
        return self._segment(body[cut:], last=True).rstrip("\n")

    def _emit_long_segment(self, pending: str, lines: list[_Line]) -> int:
        """Emit a long fence's finished lines but the last; return how many chars were emitted.

        The last complete line stays in the tail so the segment that ends the fence is never
        empty (it carries the box's bottom padding).
        """
        complete = [line for line in lines if line.complete]
        if len(complete) < 2 or complete[-2].end < FENCE_SEGMENT_CHARS:
            return 0
        cut = complete[-2].end
        self._emit_segment(pending[:cut], last=False)
        self._done += cut
        return cut

    def _emit_segment(self, code: str, *, last: bool) -> None:
        assert self._fence is not None
        self._add(self._segment(code, last=last))
        self._fence.started = True

    def _add(self, piece: str) -> None:
        # A line break after the last tag would become a trailing space when Qt inserts the piece.
        self._pieces.append(piece.rstrip("\n"))

    def _segment(self, code: str, *, last: bool) -> str:
        """HTML of some of the open fence's lines, normalised as markdown-it would."""
        fence = self._fence
        assert fence is not None
        code = _strip_one_newline(_LINE_BREAK.sub("\n", code).replace("\0", "\ufffd"))
        return _code_segment(code, fence.lang, self._theme, self.stats,
                             first=not fence.started, last=last)

    def _new_env(self, references: dict[str, Any]) -> dict[str, Any]:
        return _env(code_index=self._code_count, stats=self.stats, references=references)

    def _keep_references(self, env: dict[str, Any], first_unfinished_line: int) -> None:
        """Remember [label]: url definitions that are now in finished text (by their lines)."""
        for label, ref in env.get("references", {}).items():
            if label not in self._references and ref["map"][1] <= first_unfinished_line:
                self._references[label] = ref


def _closes(text: str, line: _Line, fence: _OpenFence) -> bool:
    match = _CLOSING_FENCE.fullmatch(text, line.start, _line_end(text, line))
    return bool(match) and match[1][0] == fence.marker and len(match[1]) >= fence.length


def _without_blank_partial_line(text: str) -> str:
    """Drop an unfinished last line of only spaces/tabs: markdown-it does not count it as a line."""
    start = max(text.rfind("\n"), text.rfind("\r")) + 1
    return text[:start] if text[start:].strip(" \t") == "" else text


def _line_end(text: str, line: _Line) -> int:
    """Offset of the end of a line's content (before its line break)."""
    end = line.end
    while end > line.start and text[end - 1] in "\r\n":
        end -= 1
    return end


def _split_lines(text: str) -> list[_Line]:
    """Lines as markdown-it numbers them (\\r\\n, \\r and \\n all break lines).

    A trailing lone \\r is not a complete line: it may be the first half of \\r\\n.
    """
    lines: list[_Line] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        complete = not (match[0] == "\r" and match.end() == len(text))
        lines.append(_Line(start, match.end(), complete))
        start = match.end()
    lines.append(_Line(start, len(text), False))
    return lines


def _top_level_blocks(tokens: list[Token]) -> list[tuple[int, int]]:
    """(first token, end token) of each top-level block."""
    starts = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map]
    return list(pairwise([*starts, len(tokens)]))


def _closed_blocks(blocks: list[tuple[int, int]], tokens: list[Token], complete: int) -> int:
    """How many leading blocks are closed: those before the last block whose start is settled.

    A settled block start closes the block before it for good; the partial last line decides
    nothing yet (a "2" may still become "2. item", continuing a list).
    """
    for index in range(len(blocks) - 1, -1, -1):
        if _settled(tokens[blocks[index][0]], complete):
            return index
    return 0


def _settled(token: Token, complete: int) -> bool:
    """A block's start is settled once its first line is complete; a table's once its delimiter
    row is too (until then, "a | b" + "---|-" may turn out to be a paragraph after all)."""
    lines_needed = 2 if token.type == "table_open" else 1
    return token.map[0] + lines_needed <= complete


# ---------------------------------------------------------------------------------------------
# markdown-it setup and render rules


def _env(*, code_index: int, stats: RenderStats, references: dict[str, Any]) -> dict[str, Any]:
    return {"code_index": code_index, "stats": stats, "references": references}


def _parse(md: MarkdownIt, text: str, env: dict[str, Any]) -> list[Token]:
    env["stats"].parsed_chars += len(text)
    return md.parse(text, env)


@lru_cache(maxsize=2)
def _markdown(dark: bool) -> MarkdownIt:
    theme = DARK if dark else LIGHT
    # html off: raw HTML is escaped text. breaks on: a model's single line breaks are meant.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "breaks": True})
    md.enable(["table", "strikethrough"])
    md.validateLink = _is_safe_link  # failing links stay literal text, never <a>
    rules = {
        "fence": lambda self, tokens, idx, options, env: _code_block(tokens[idx], theme, env),
        "code_block": lambda self, tokens, idx, options, env: _code_block(tokens[idx], theme, env),
        "code_inline": lambda self, tokens, idx, options, env: _inline_code(tokens[idx], theme),
        "image": lambda self, tokens, idx, options, env: _image(self, tokens, idx, options, env,
                                                                theme),
        "table_open": lambda self, *args: _table_open(theme),
        "th_open": lambda self, tokens, idx, *args: _cell_open("th", tokens[idx]),
        "td_open": lambda self, tokens, idx, *args: _cell_open("td", tokens[idx]),
        "blockquote_open": lambda self, *args: _blockquote_open(theme),
        "blockquote_close": lambda self, *args: "</td></tr></table>\n",
        "heading_open": lambda self, tokens, idx, *args: _heading_open(tokens[idx]),
        "link_open": lambda self, tokens, idx, *args: _link_open(tokens[idx], theme),
    }
    for name, rule in rules.items():
        md.add_render_rule(name, rule)
    return md


def _is_safe_link(url: str) -> bool:
    return bool(_SAFE_LINK.match(url.strip()))


def _code_block(token: Token, theme: _Theme, env: dict[str, Any]) -> str:
    index = env["code_index"]
    env["code_index"] = index + 1
    lang = _language(token.info) if token.type == "fence" else ""
    code = _strip_one_newline(token.content)
    return (_code_header(index, lang, theme)
            + _code_segment(code, lang, theme, env["stats"], first=True, last=True))


def _code_header(index: int, lang: str, theme: _Theme) -> str:
    """The line above a code block: its language and the copy:<n> link."""
    label = f'{html.escape(lang)}&nbsp;&nbsp;' if lang else ""
    link = f'<a href="copy:{index}" style="color: {theme.link}">Copy</a>'
    return (f'<p style="margin-top: 8px; margin-bottom: 2px; font-size: small; '
            f'color: {theme.muted}">{label}{link}</p>\n')


def _code_segment(code: str, lang: str, theme: _Theme, stats: RenderStats, *,
                  first: bool, last: bool) -> str:
    """A padded box of code. Streamed fences stack several; only the ends get vertical padding.
    Long lines wrap inside the box (pre-wrap): a `<pre>` line Qt cannot break would widen the whole
    message past the window's edge. Copy takes the code from the Markdown, so it stays unwrapped."""
    padding = f"{6 if first else 0}px 10px {6 if last else 0}px 10px"
    return (f'<table width="100%" cellspacing="0" cellpadding="0" '
            f'style="margin: 0; background-color: {theme.code_bg}">'
            f'<tr><td style="padding: {padding}">'
            f'<pre style="margin: 0; white-space: pre-wrap; font-family: {MONOSPACE}">'
            f'{_highlight(code, lang, theme, stats)}</pre></td></tr></table>\n')


def _highlight(code: str, lang: str, theme: _Theme, stats: RenderStats) -> str:
    lexer = _lexer(lang.lower())
    if lexer is None:
        return html.escape(code, quote=False)  # plain: cheaper than any guess
    stats.highlighted_chars += len(code)
    result = highlight(code, lexer, _formatter(theme.pygments_style))
    return result[:-1] if result.endswith("\n") and not code.endswith("\n") else result


@lru_cache(maxsize=128)
def _lexer(lang: str) -> Lexer | None:
    if not lang:
        return None
    try:
        # stripnl/ensurenl off: the code must come out exactly as it went in.
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@lru_cache(maxsize=4)
def _formatter(style: str) -> HtmlFormatter:
    # noclasses: inline styles, which Qt's rich text understands; nowrap: we build the box.
    return HtmlFormatter(noclasses=True, nowrap=True, style=style)


def _language(info: str) -> str:
    """The first word of a fence's info string ("python {.x}" -> "python")."""
    return info.split(maxsplit=1)[0] if info.strip() else ""


def _inline_code(token: Token, theme: _Theme) -> str:
    # Qt gives <code> no monospace font of its own here, so name the fonts.
    return (f'<span style="font-family: {MONOSPACE}; background-color: {theme.inline_code_bg}">'
            f'{html.escape(token.content, quote=False)}</span>')


def _link_open(token: Token, theme: _Theme) -> str:
    # Only http(s)/mailto hrefs get here (validateLink); the colour reads on either background.
    href = html.escape(token.attrGet("href") or "")
    return f'<a href="{href}" style="color: {theme.link}">'


def _image(renderer: Any, tokens: list[Token], idx: int, options: Any, env: dict[str, Any],
           theme: _Theme) -> str:
    """Never an <img>: the alt text, then the image's URL as a link the user may choose to open."""
    token = tokens[idx]
    alt = html.escape(renderer.renderInlineAsText(token.children or [], options, env), quote=False)
    src = html.escape(token.attrGet("src") or "")
    # Inside a link ([![alt](img)](href)) the URL stays text: Qt has no use for nested anchors.
    link = src if _inside_link(tokens, idx) else f'<a href="{src}" style="color: {theme.link}">{src}</a>'
    return f"<i>{alt}</i> ({link})" if alt else link


def _inside_link(tokens: list[Token], idx: int) -> bool:
    depth = 0
    for token in tokens[:idx]:
        depth += {"link_open": 1, "link_close": -1}.get(token.type, 0)
    return depth > 0


def _table_open(theme: _Theme) -> str:
    # border-style solid: without it Qt draws a faint 3D "outset" border.
    return (f'<table border="1" cellspacing="0" cellpadding="4" '
            f'style="border-collapse: collapse; border-style: solid; '
            f'border-color: {theme.table_border}; margin-top: 6px; margin-bottom: 6px">\n')


def _cell_open(tag: str, token: Token) -> str:
    # markdown-it gives alignment as style="text-align:x"; Qt honours the align attribute.
    style = str(token.attrGet("style") or "")
    align = style.removeprefix("text-align:")
    return f'<{tag} align="{align}">' if align in ("left", "center", "right") else f"<{tag}>"


def _blockquote_open(theme: _Theme) -> str:
    # Qt draws no border on a block, so a thin coloured table cell stands in for the quote bar.
    return (f'<table cellspacing="0" cellpadding="0" style="margin-top: 6px; margin-bottom: 6px">'
            f'<tr><td width="3" bgcolor="{theme.quote_bar}"></td>'
            f'<td style="padding-left: 10px; color: {theme.muted}">\n')


def _heading_open(token: Token) -> str:
    size = _HEADING_SIZES.get(token.tag, "medium")
    return f'<{token.tag} style="font-size: {size}">'


def _strip_one_newline(code: str) -> str:
    return code[:-1] if code.endswith("\n") else code


# ---------------------------------------------------------------------------------------------
# Benchmark


def sample_answer(chars: int = 20_000) -> str:
    """A model-like answer of about `chars` characters: prose, lists, a table and code."""
    parts: list[str] = []
    section = size = 0
    while size < chars:
        section += 1
        parts.append(
            f"## Step {section}\n\n"
            f"First we **prepare** the data, keeping `state_{section}` small and *readable*. "
            "Then we check each value against the [docs](https://example.com/docs) before use.\n\n"
            f"1. Load the file\n2. Parse line {section}\n   - keep comments\n3. Save\n\n"
            f"```python\ndef step_{section}(items):\n    total = 0\n"
            "    for item in items:\n        total += item\n    return total\n```\n\n"
            "| name | value |\n|------|------:|\n"
            f"| step | {section} |\n\n> Note: results may vary.\n\n")
        size += len(parts[-1])
    return "".join(parts)[:chars]


@dataclass
class Measurement:
    """measure()'s result: milliseconds of rendering work, and the most text parsed at once."""

    updates: int
    stream_total_ms: float
    stream_max_update_ms: float
    full_render_ms: float
    max_parsed_chars: int


def measure(text: str | None = None, *, step: int = 5, dark: bool = False) -> Measurement:
    """Time streaming `text` in `step`-character updates against one full render.

    For people, not tests: timings vary by machine. Rendering only; a view adds Qt's cost.
    """
    text = sample_answer() if text is None else text
    renderer = StreamingRenderer(dark=dark)
    worst = total = 0.0
    max_parsed = updates = 0
    for end in range(step, len(text) + step, step):
        began = time.perf_counter()
        renderer.update(text[:end])
        spent = time.perf_counter() - began
        total, worst, updates = total + spent, max(worst, spent), updates + 1
        max_parsed = max(max_parsed, renderer.stats.parsed_chars)
    renderer.finish()
    began = time.perf_counter()
    render(text, dark=dark)
    full = time.perf_counter() - began
    return Measurement(updates, total * 1000, worst * 1000, full * 1000, max_parsed)


if __name__ == "__main__":
    print(measure())
