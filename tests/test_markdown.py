"""Model output to safe HTML: rendering, hostile input, code copying, and streaming pieces."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import re

import pytest
from PySide6.QtGui import QTextDocument, QTextDocumentFragment, QTextTable

from app.gui import markdown
from app.gui.markdown import StreamingRenderer, code_blocks, render, sample_answer

HREF = re.compile(r'href="([^"]*)"')
COPY = re.compile(r'href="copy:(\d+)"')
ALLOWED_HREF = re.compile(r"(?:https?:|mailto:|copy:\d+$)", re.IGNORECASE)


@pytest.fixture(autouse=True)
def _app(qapp):
    """Qt's rich text needs a (Gui)Application; pytest-qt's qapp provides one."""
    return qapp


def visible(html: str) -> str:
    """The text Qt shows for this HTML.

    Uses QTextDocumentFragment (same HTML importer as QTextDocument.setHtml) because it is free
    of a PySide6 6.12 / CPython 3.11 bug: every call of a void method such as setHtml drops a
    reference to None, and the thousands of prefixes below would exhaust it and abort Python.
    """
    return QTextDocumentFragment.fromHtml(html).toPlainText()


def qt_html(html: str) -> str:
    """Qt's own re-serialisation of this HTML: every block with its format, as Qt sees it."""
    return QTextDocumentFragment.fromHtml(html).toHtml()


def document(html: str) -> QTextDocument:
    doc = QTextDocument()
    doc.setHtml(html)
    return doc


def nonblank(text: str) -> list[str]:
    """Lines with text, trimmed: Qt adds spaces where HTML had line breaks between tags, and
    an empty block after every table."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def blocks(doc: QTextDocument) -> list[tuple]:
    """Each block's text and the formats that decide how it looks."""
    out = []
    block = doc.begin()
    while block.isValid():
        fmt = block.blockFormat()
        # objectIndex tells list membership; QTextBlock.textList() hits the None bug above.
        out.append((block.text(), fmt.headingLevel(), fmt.topMargin(), fmt.bottomMargin(),
                    fmt.leftMargin(), fmt.objectIndex() >= 0, block.charFormat().fontPointSize()))
        block = block.next()
    return out


# ---------------------------------------------------------------------------------------------
# Ordinary Markdown


def test_headings_are_modest_and_keep_their_level():
    html = render("# One\n## Two\n### Three\n#### Four")
    assert '<h1 style="font-size: x-large">One</h1>' in html
    assert '<h2 style="font-size: large">Two</h2>' in html
    assert '<h3 style="font-size: medium">Three</h3>' in html
    levels = [b[1] for b in blocks(document(html)) if b[0]]
    assert levels == [1, 2, 3, 4]


def test_emphasis_strong_and_strikethrough():
    html = render("*it* **bold** ~~gone~~ _also_")
    assert "<em>it</em>" in html and "<strong>bold</strong>" in html
    assert "<s>gone</s>" in html and "<em>also</em>" in html
    assert visible(html) == "it bold gone also"


def test_single_line_breaks_are_kept():
    # A model's single newlines are meant as line breaks (poems, addresses, short lists).
    html = render("first line\nsecond line")
    assert "<br />" in html and visible(html) == "first line\nsecond line"


def test_lists_and_nested_lists():
    text = "- one\n- two\n  1. inner a\n  2. inner b\n     - deepest\n- three\n\n3. starts at three"
    html = render(text)
    assert html.count("<ul>") == 2 and html.count("<ol") == 2
    assert '<ol start="3">' in html
    assert nonblank(visible(html)) == ["one", "two", "inner a", "inner b", "deepest", "three",
                                       "starts at three"]
    indents = {b[0]: b[4] for b in blocks(document(html))}
    assert indents["one"] == indents["three"]  # same list level, whatever Qt's indent unit


def test_table_has_borders_and_alignment():
    html = render("| Name | Size |\n|:-----|-----:|\n| a.txt | 10 |\n| b.txt | 200 |")
    assert 'border="1"' in html and "border-style: solid" in html
    assert '<th align="right">Size</th>' in html and '<td align="right">200</td>' in html
    doc = document(html)
    tables = [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]
    assert len(tables) == 1
    assert (tables[0].rows(), tables[0].columns()) == (3, 2)
    assert tables[0].format().border() >= 1
    assert visible(html).split() == ["Name", "Size", "a.txt", "10", "b.txt", "200"]


def test_blockquote_has_a_bar_and_muted_text():
    html = render("> quoted **words**\n>\n> second paragraph")
    assert 'bgcolor="#d0d7de"' in html  # the bar: a thin coloured cell
    assert "color: #57606a" in html
    assert nonblank(visible(html)) == ["quoted words", "second paragraph"]


def test_inline_code_is_monospace_with_a_background():
    html = render("call `do_it(x)` now")
    assert "<code" not in html  # Qt gives <code> no font of its own: we name one
    doc = document(html)
    cursor = doc.find("do_it(x)")
    fmt = cursor.charFormat()
    assert "monospace" in fmt.fontFamilies()
    assert fmt.background().color().name() == markdown.LIGHT.inline_code_bg
    assert visible(html) == "call do_it(x) now"


def test_fenced_code_with_language_is_highlighted_inline_styled():
    html = render("```python\ndef f(x):\n    return x  # done\n```")
    assert 'href="copy:0"' in html and "python" in html
    assert '<span style="color:' in html  # Pygments' inline styles (noclasses)
    assert "class=" not in html
    assert "def f(x):\n    return x  # done" in visible(html)


def test_dark_code_uses_a_dark_box_and_dark_colours():
    light = render("```python\nx = 'text'\n```")
    dark = render("```python\nx = 'text'\n```", dark=True)
    assert markdown.DARK.code_bg in dark and markdown.LIGHT.code_bg not in dark
    assert light != dark
    assert visible(light) == visible(dark)


@pytest.mark.parametrize("fence", ["```", "```notalanguage", "~~~"])
def test_code_without_a_known_language_is_plain_and_escaped(fence):
    closer = "~~~" if fence.startswith("~") else "```"
    html = render(f"{fence}\n<b>bold?</b> & x\n{closer}")
    assert "<b>" not in html and "&lt;b&gt;bold?&lt;/b&gt; &amp; x" in html
    assert '<span style="color' not in html
    assert "<b>bold?</b> & x" in visible(html)


def test_indented_code_block_is_code_with_a_copy_link():
    html = render("Text:\n\n    indented = True\n      deeper\n\nAfter.")
    assert 'href="copy:0"' in html and "<pre" in html
    assert "indented = True\n  deeper" in visible(html)


def test_code_blocks_returns_exact_code_in_copy_link_order():
    text = (
        "Intro\n\n"
        "```python\ndef f():\n\treturn 'tab'   \n\n# blank line above\n```\n\n"
        "    indented\n    block\n\n"
        "- item\n\n  ```sh\n  echo \"in a list\"\n  ```\n\n"
        "~~~\n```\nbackticks inside tildes\n```\n~~~\n\n"
        "> ```\n> quoted code 👋 שלום\n> ```\n"
    )
    assert code_blocks(text) == [
        "def f():\n\treturn 'tab'   \n\n# blank line above",
        "indented\nblock",
        'echo "in a list"',
        "```\nbackticks inside tildes\n```",
        "quoted code 👋 שלום",
    ]
    html = render(text)
    assert [int(n) for n in COPY.findall(html)] == [0, 1, 2, 3, 4]
    shown = visible(html)
    for code in code_blocks(text):  # each Copy link sits above its code
        assert f"Copy\n{code.splitlines()[0]}" in shown


def test_unterminated_fence_renders_as_code_to_the_end():
    text = "Here:\n\n```python\ndef f():\n    pass\n\nmore = 1"
    html = render(text)
    assert code_blocks(text) == ["def f():\n    pass\n\nmore = 1"]
    assert html.count("<pre") == 1 and "<p>more" not in html
    assert visible(html).rstrip("\n").endswith("def f():\n    pass\n\nmore = 1")


def test_unicode_emoji_and_right_to_left_text_survive():
    text = "# مرحبا بالعالم 👋\n\nשלום `קוד` 日本語 🧪🚀\n\n```\nprint('héllo 🌍')\n```"
    shown = visible(render(text))
    for part in ("مرحبا بالعالم 👋", "שלום קוד 日本語 🧪🚀", "print('héllo 🌍')"):
        assert part in shown
    assert code_blocks(text) == ["print('héllo 🌍')"]


# ---------------------------------------------------------------------------------------------
# Hostile input


@pytest.mark.parametrize("raw", [
    "<script>alert(1)</script>",
    "<img src=http://x/y.png onerror=alert(1)>",
    '<iframe src="http://evil.example/"></iframe>',
    '<a href="javascript:alert(1)">click</a>',
    "<style>body { display: none }</style>",
    '<div style="background-image: url(http://x/y.png)">x</div>',
])
@pytest.mark.parametrize("where", ["block", "inline"])
def test_raw_html_arrives_as_visible_text(raw, where):
    text = raw if where == "block" else f"Before {raw} after"
    html = render(text)
    for tag in ("<script", "<img", "<iframe", "<style", "<div", '<a href="javascript'):
        assert tag not in html.lower()
    assert raw in visible(html)


@pytest.mark.parametrize("text", [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x](/relative/path)",
    "[x](//evil.example/)",
    "<javascript:alert(1)>",
    "[x][r]\n\n[r]: javascript:alert(1)",
    "![x](data:image/png;base64,AAAA)",
])
def test_unsafe_links_are_plain_text(text):
    html = render(text)
    assert "<a " not in html
    assert visible(html).startswith(("[x]", "<javascript", "![x]"))


def test_safe_links_are_links_and_escaped():
    html = render("[docs](https://example.com/?a=1&b=\"2\") <mailto:me@example.com> "
                  "<https://example.org> <you@example.net> [ref]\n\n[ref]: http://example.com/r")
    assert HREF.findall(html) == ["https://example.com/?a=1&amp;b=%222%22",
                                  "mailto:me@example.com", "https://example.org",
                                  "mailto:you@example.net", "http://example.com/r"]


def test_bare_urls_are_not_turned_into_links():
    assert "<a " not in render("see https://example.com and www.example.com")


def test_images_are_never_loaded_only_named_and_linked():
    html = render("Look: ![a cat](https://example.com/cat.png \"title\") and ![](http://x/y.png)")
    assert "<img" not in html
    assert HREF.findall(html) == ["https://example.com/cat.png", "http://x/y.png"]
    assert visible(html) == ("Look: a cat (https://example.com/cat.png) and http://x/y.png")


def test_an_image_inside_a_link_gives_no_nested_link():
    html = render("[![logo <b>](http://x/logo.png)](https://example.com/home)")
    assert "<img" not in html and "<b>" not in html
    assert HREF.findall(html) == ["https://example.com/home"]
    assert visible(html) == "logo <b> (http://x/logo.png)"


class RecordingDocument(QTextDocument):
    """Records every resource (image, stylesheet) Qt asks for while laying out."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def loadResource(self, kind, url):  # noqa: N802 - Qt override
        self.requests.append(url.toString())
        return super().loadResource(kind, url)


def test_rendered_hostile_text_makes_qt_fetch_nothing():
    control = RecordingDocument()
    control.setHtml('<img src="http://x/control.png">')
    control.size()  # layout asks for the image: the recorder works
    assert control.requests

    text = ("![cat](http://x/cat.png) <img src=http://x/y.png> "
            "<div style=\"background-image: url(http://x/z.png)\">x</div>\n\n"
            "[![nested](http://x/n.png)](http://x/link)")
    doc = RecordingDocument()
    doc.setHtml(render(text))
    doc.size()
    assert doc.requests == []


def test_raw_entities_stay_text():
    html = render("&lt;script&gt;alert(1)&lt;/script&gt; &#x3C;img src=x&#x3E; &amp; &copy; &bogus;")
    assert "<script" not in html and "<img" not in html
    assert visible(html) == "<script>alert(1)</script> <img src=x> & © &bogus;"


def test_nul_characters_are_replaced_not_fatal():
    assert "\ufffd" in visible(render("a\0b\n\n```\nc\0d\n```"))


@pytest.mark.parametrize("text", [
    "[" * 20_000,
    "*a" * 20_000,
    ">" * 5_000 + " deep",
    "".join("  " * i + "- x\n" for i in range(200)),
    "`" * 20_000,
])
def test_pathological_input_renders(text):
    assert isinstance(render(text), str)
    renderer = StreamingRenderer()
    renderer.update(text)
    renderer.finish()


def test_a_one_megabyte_paste_renders():
    text = (sample_answer(20_000) + "\n\n<script>x</script>\n\n") * 50
    assert len(text) > 1_000_000
    html = render(text)
    assert "<script" not in html
    assert len(code_blocks(text)) == len(COPY.findall(html)) > 0


# ---------------------------------------------------------------------------------------------
# Streaming

SAMPLES = {
    "answer": (
        "# Getting started\n\nHere is a **short** answer with *emphasis* and `inline()`.\n"
        "A second line right after.\n\n## Install\n\n1. Download the file\n2. Run it\n"
        "   - nested bullet\n   - another\n3. Done\n\n```bash\npip install hearth\n"
        "hearth --help\n```\n\n| Option | Default |\n|:-------|--------:|\n| `-v` | off |\n"
        "| `-q` | on |\n\n> **Note:** quotes look like this,\n> over two lines.\n\n"
        "### Details\n\n    indented code\n    second line\n\n"
        "![diagram](https://example.com/d.png) and <script>alert(1)</script>\n\n---\n"
        "End. مرحبا 👋 日本語\n"
    ),
    "fences": (
        "Intro paragraph\n```python\ndef f(x):\n\n    return x  # blank line above\n```\n"
        "Right after the fence.\n\n~~~\ntilde fence\n~~~\n\n````markdown\n```\ninner fence\n"
        "```\n````\n\n```js   \nlet a = 1;\n```   \n\n  ```\n  indented opener\n  ```\n\n"
        "- item\n\n  ```sh\n  echo in list\n  ```\n- next\n\n```\ncode\n   ```\n"
        "closed by an indented fence\n\n```unknownlang\nstill open at the end\n\n"
    ),
    "structures": (
        "Setext heading\n==============\n\nPara\n---\n\n***\n\n1. loose\n\n2. list\n\n"
        "   continued paragraph\n\n7. starts at seven\n8. tight\n\n- a\n- b\n\n+ c\n\n"
        "> quote with list\n> - x\n> ```\n> code in quote\n> ```\n\nlazy\ncontinuation "
        "line  \nhard break\n\n[ref link][r] and [r]\n\n[r]: https://example.com/r \"T\"\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\ntext after table\n\n"
    ),
    # Lines whose meaning depends on the next line: a table's delimiter row (here with the
    # wrong column count at first, or under a fence-like header) and a multi-line link title.
    "lookahead": (
        "First\n\nx\n| a | b |\n---|---|---\nafter\n\n```py|x\n---|---\n\n"
        "[a]: http://example.com/a\n'title\n```\nstill the title'\n\nSee [a].\n\n```\ncode\n```\n"
    ),
    "hostile": (
        "<script>alert(1)</script>\n\n[x](javascript:alert(1)) ![i](http://x/y.png)\n\n"
        "<img src=http://x/y.png onerror=alert(1)>\n\n&lt;b&gt; &amp; &copy;\n\n"
        "```html\n<iframe src=\"http://evil\"></iframe>\n```\n\nשלום עולם 🧪 and \0 nul\n"
    ),
}
SAMPLES["crlf"] = SAMPLES["answer"].replace("\n", "\r\n")


def stream(text: str, steps: list[int]):
    """Yield (prefix, update, finished HTML so far, renderer) for each prefix end in steps."""
    renderer = StreamingRenderer()
    finished: list[str] = []
    for end in steps:
        update = renderer.update(text[:end])
        finished.append(update.finished_html)
        assert update.stable == renderer.stable
        yield text[:end], update, "".join(finished), renderer


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_streamed_pieces_show_the_same_text_as_a_full_render_for_every_prefix(name):
    text = SAMPLES[name]
    for prefix, update, finished, renderer in stream(text, list(range(1, len(text) + 1))):
        assert update.tail_html == "" or update.tail_html.strip()
        shown = finished + update.tail_html
        assert renderer.html() == shown
        assert all(ALLOWED_HREF.match(href) for href in HREF.findall(shown))
        assert visible(shown) == visible(render(prefix)), f"after {prefix[-40:]!r}"
        # Stronger: the same blocks with the same formats (a paragraph split in two by a wrongly
        # finished block shows the same text but not the same margins).
        assert qt_html(shown) == qt_html(render(prefix)), f"after {prefix[-40:]!r}"
        # copy:<n> links: one per code block so far, numbered in order, never renumbered.
        assert [int(n) for n in COPY.findall(shown)] == list(range(len(code_blocks(prefix))))
    last = renderer.finish(text)
    assert last.tail_html == ""
    whole = finished + last.finished_html
    assert visible(whole) == visible(render(text))
    assert blocks(document(whole)) == blocks(document(render(text)))


def test_finished_pieces_are_never_recomputed():
    text = SAMPLES["answer"]
    renderer = StreamingRenderer()
    seen: list[str] = []
    for end in range(1, len(text) + 1, 3):
        update = renderer.update(text[:end])
        # The very same string objects: earlier pieces were not rendered again.
        assert all(now is before for now, before in zip(renderer._pieces[:len(seen)], seen, strict=True))
        seen = list(renderer._pieces)
        assert update.stable == len(seen)
    renderer.finish(text)
    assert renderer.stable > 10


@pytest.mark.parametrize("cut", ["mid-line", "at-newline"])
def test_an_open_fence_streams_as_code_with_a_stable_copy_number(cut):
    head = "Before\n\n```python\n"
    body = "def f(x):\n    return x\n" * 3
    renderer = StreamingRenderer()
    headers = []
    for end in range(len(head), len(head) + len(body) + 1):
        prefix = (head + body)[:end]
        if (cut == "at-newline") != prefix.endswith("\n"):
            continue
        update = renderer.update(prefix)
        headers += COPY.findall(update.finished_html)
        code = prefix[len(head):]
        if code.strip():
            assert "<pre" in update.tail_html and "<p>def" not in update.tail_html
        assert visible(renderer.html()).rstrip().endswith(code.rstrip())
    assert headers == ["0"]  # the header was finished once, with its number


def test_text_must_only_grow():
    renderer = StreamingRenderer()
    renderer.update("Para one\n\nPara two\n\nthree")
    with pytest.raises(ValueError):
        renderer.update("Para")


def test_finish_without_updates_renders_everything():
    renderer = StreamingRenderer()
    update = renderer.finish(SAMPLES["answer"])
    assert update.tail_html == "" and update.stable == renderer.stable
    assert visible(update.finished_html) == visible(render(SAMPLES["answer"]))


def test_reference_definitions_carry_into_later_blocks():
    text = "[r]: https://example.com/r\n\nFirst para.\n\nLater [link][r].\n"
    renderer = StreamingRenderer()
    for end in range(1, len(text) + 1):
        renderer.update(text[:end])
    assert 'href="https://example.com/r"' in renderer.finish().finished_html


def test_a_long_fence_is_streamed_in_segments_that_read_as_one(monkeypatch):
    monkeypatch.setattr(markdown, "FENCE_SEGMENT_CHARS", 200)
    lines = "".join(f"value_{i} = compute({i})  # step {i}\n" for i in range(60))
    text = f"Intro\n\n```python\n{lines}```\n\nAfter.\n"
    renderer = StreamingRenderer()
    finished = ""
    for end in range(1, len(text) + 1, 5):
        update = renderer.update(text[:end])
        finished += update.finished_html
        # Qt keeps an empty block between stacked boxes: compare the non-empty lines.
        assert nonblank(visible(finished + update.tail_html)) == nonblank(
            visible(render(text[:end])))
        assert renderer.pending_chars < 200 + 3 * 60  # never the whole fence
    finished += renderer.finish(text).finished_html
    assert finished.count("<table") > 5 and COPY.findall(finished) == ["0"]
    assert nonblank(visible(finished)) == nonblank(visible(render(text)))


@pytest.mark.parametrize("name", ["answer", "fences", "crlf", "lookahead"])
def test_tiny_fence_segments_still_show_the_same_text_for_every_prefix(name, monkeypatch):
    monkeypatch.setattr(markdown, "FENCE_SEGMENT_CHARS", 8)  # a segment every line or two
    text = SAMPLES[name]
    for prefix, update, finished, _ in stream(text, list(range(1, len(text) + 1))):
        shown = finished + update.tail_html
        assert nonblank(visible(shown)) == nonblank(visible(render(prefix))), prefix[-40:]
        assert [int(n) for n in COPY.findall(shown)] == list(range(len(code_blocks(prefix))))


def test_per_update_work_is_bounded_by_the_tail(monkeypatch):
    """A 20,000-character answer streamed 5 characters at a time: each update hands markdown-it
    and Pygments only the unfinished tail plus the new characters, never the whole answer."""
    parsed: list[int] = []
    highlighted: list[int] = []
    md = markdown._markdown(False)
    real_parse, real_highlight = md.parse, markdown.highlight
    monkeypatch.setattr(md, "parse", lambda src, env=None: parsed.append(len(src))
                        or real_parse(src, env))
    monkeypatch.setattr(markdown, "highlight", lambda code, *a: highlighted.append(len(code))
                        or real_highlight(code, *a))

    text = sample_answer(20_000)
    step = 5
    renderer = StreamingRenderer()
    pending_before = 0
    worst_parsed = worst_highlighted = 0
    for end in range(step, len(text) + 1, step):
        parsed.clear()
        highlighted.clear()
        renderer.update(text[:end])
        assert sum(parsed) <= pending_before + step
        assert sum(highlighted) <= pending_before + step
        assert renderer.stats.parsed_chars == sum(parsed)
        pending_before = renderer.pending_chars
        worst_parsed = max(worst_parsed, sum(parsed))
        worst_highlighted = max(worst_highlighted, sum(highlighted))
    # The sample's largest block is a few hundred characters; the answer is 20,000.
    assert worst_parsed < 600 and worst_highlighted < 600
    assert renderer.stable > 300


def test_measure_reports_without_asserting_speed():
    result = markdown.measure(sample_answer(1_000), step=50)
    assert result.updates == 20 and result.max_parsed_chars > 0
