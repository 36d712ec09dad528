"""From a list of chat messages to the exact token ids a model sees, within its context window.

Llama 2 chat models get Meta's reference encoding (meta-llama/llama, generation.py,
`chat_completion`): the system prompt folded into the first user turn, each finished exchange
encoded on its own with BOS before and EOS after as ids, the open turn with BOS only. That is built
from ids, never by rendering the Hugging Face template to text, whose result depends on the
tokenizer's `legacy` flag. Other models use their own chat template. A model with neither needs the
explicit plain-completion mode.

In every format the texts of messages (system prompt, user turns, earlier answers) are encoded as
text: a control token's name typed in one, such as `<|im_end|>` or `</s>`, never becomes that token.
Control tokens come only from the format itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import ContextOverflow, PromptError
from .model_folder import ModelInfo
from .tokenizer import Tokenizer

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
ROLES = ("system", "user", "assistant")
LLAMA2_NAME = re.compile(r"llama[-_ ]?2.*chat|code[-_ ]?llama.*instruct", re.IGNORECASE)


class PromptFormat(str, Enum):
    LLAMA2 = "llama2"
    TEMPLATE = "template"
    PLAIN = "plain"


@dataclass(frozen=True)
class Prompt:
    """The ids sent to the model, and which input messages had to be left out to fit."""

    ids: list[int]
    format: PromptFormat
    dropped_messages: list[int] = field(default_factory=list)
    context_length: int = 0
    max_tokens: int = 0


def choose_format(info: ModelInfo, requested: str | None = None) -> PromptFormat:
    if requested:
        try:
            fmt = PromptFormat(requested)
        except ValueError:
            raise PromptError(
                f"Unknown prompt format {requested!r}; use llama2, template or plain."
            ) from None
        if fmt is PromptFormat.TEMPLATE and not info.chat_template:
            raise PromptError(f"{info.name} has no chat template.")
        return fmt
    template = info.chat_template
    if template and B_INST in template and "<<SYS>>" in template:
        return PromptFormat.LLAMA2
    if template:
        return PromptFormat.TEMPLATE
    if LLAMA2_NAME.search(info.name) or LLAMA2_NAME.search(info.path.name):
        return PromptFormat.LLAMA2
    raise PromptError(
        f"{info.name} has no chat template and is not a known Llama 2 chat model, so Hearth cannot "
        f"tell how to format a chat for it. Use the plain-completion mode (--prompt-format plain), "
        f"or --prompt-format llama2 if it is a Llama 2 chat model."
    )


def validate_messages(messages: list[dict[str, Any]], fmt: PromptFormat, continuing: bool = False) -> None:
    if not messages:
        raise PromptError("There are no messages to answer.")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise PromptError(f"Message {i + 1} needs a 'role' and a text 'content'.")
        if message.get("role") not in ROLES:
            raise PromptError(
                f"Message {i + 1} has role {message.get('role')!r}; use system, user or assistant."
            )
        if not _is_text(message["content"]):
            raise PromptError(f"Message {i + 1} is not text: it holds a lone surrogate code point.")
    if fmt is PromptFormat.PLAIN:
        return
    start = 1 if messages[0]["role"] == "system" else 0
    for i, message in enumerate(messages[start:], start=start):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if message["role"] != expected:
            which = "the first message" if i == start else f"message {i + 1}"
            raise PromptError(
                f"Message {i + 1} is from {message['role']!r}, but {which} must be from "
                f"{expected!r}: roles alternate user, assistant, user, ... after an optional "
                f"system prompt."
            )
    if continuing and messages[-1]["role"] != "assistant":
        raise PromptError("To continue an answer, the last message must be that (partial) answer.")
    if not continuing and messages[-1]["role"] != "user":
        raise PromptError("The last message must be from the user: there is nothing to answer.")


def build_prompt(
    tokenizer: Tokenizer,
    messages: list[dict[str, Any]],
    fmt: PromptFormat,
    context_length: int,
    max_tokens: int,
    continuing: bool = False,
) -> Prompt:
    """Ids for the messages, dropping the oldest whole exchanges (never the system prompt) to fit.

    continuing: the last message is a partial answer (stopped, cut or interrupted) that the model
    goes on with, rather than a user turn to answer."""
    validate_messages(messages, fmt, continuing)
    builder = {
        PromptFormat.LLAMA2: _Llama2Builder,
        PromptFormat.TEMPLATE: _TemplateBuilder,
        PromptFormat.PLAIN: _PlainBuilder,
    }[fmt](tokenizer, messages, continuing)
    reserve = max(1, min(max_tokens, context_length // 4))
    dropped, ids = _fewest_to_drop(builder, lambda ids: len(ids) + reserve <= context_length)
    if len(ids) >= context_length:
        raise ContextOverflow(
            f"The newest message does not fit: the prompt needs {len(ids):,} tokens even with every "
            f"earlier message left out, and the context window holds {context_length:,}."
        )
    return Prompt(
        ids=ids,
        format=fmt,
        dropped_messages=builder.dropped_indices(dropped),
        context_length=context_length,
        max_tokens=min(max_tokens, context_length - len(ids)),
    )


def _is_text(text: str) -> bool:
    """False for a str holding lone surrogates (undecodable bytes, JSON escapes like \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fewest_to_drop(builder: _Builder, fits) -> tuple[int, list[int]]:
    """The fewest oldest exchanges to leave out for the ids to fit (all of them if nothing fits),
    and those ids. A binary search: each try encodes the whole chat, and leaving more out never
    makes a prompt longer."""
    ids = builder.ids(0)
    if fits(ids) or builder.max_droppable == 0:
        return 0, ids
    low, high = 1, builder.max_droppable  # the answer is in [low, high]
    found = builder.ids(high)
    while low < high:
        middle = (low + high) // 2
        tried = builder.ids(middle)
        if fits(tried):
            high, found = middle, tried
        else:
            low = middle + 1
    return high, found


class _Builder:
    """Splits messages into [system?] + whole exchanges + the open user turn."""

    def __init__(self, tokenizer: Tokenizer, messages: list[dict[str, Any]], continuing: bool = False) -> None:
        self.tokenizer = tokenizer
        self.continuing = continuing
        self.system = messages[0]["content"] if messages[0]["role"] == "system" else None
        self.offset = 1 if self.system is not None else 0
        self.turns = messages[self.offset :]
        open_turn = 2 if continuing else 1  # the open user turn, and the partial answer if any
        self.max_droppable = (len(self.turns) - open_turn) // 2  # whole exchanges before it

    def dropped_indices(self, dropped: int) -> list[int]:
        return list(range(self.offset, self.offset + 2 * dropped))

    def ids(self, dropped: int) -> list[int]:
        raise NotImplementedError


class _Llama2Builder(_Builder):
    def __init__(self, tokenizer: Tokenizer, messages: list[dict[str, Any]], continuing: bool = False) -> None:
        super().__init__(tokenizer, messages, continuing)
        if tokenizer.bos_id is None or not tokenizer.eos_ids:
            raise PromptError("This tokenizer has no BOS/EOS tokens, so it cannot be a Llama 2 one.")
        self.bos = tokenizer.bos_id
        self.eos = self._eos_id(tokenizer)
        self._plain: dict[int, list[int]] = {}

    @staticmethod
    def _eos_id(tokenizer: Tokenizer) -> int:
        hf_eos = tokenizer.hf.eos_token_id
        return hf_eos if hf_eos in tokenizer.eos_ids else min(tokenizer.eos_ids)

    def _exchange(self, index: int, with_system: bool) -> list[int]:
        user = self.turns[index]["content"]
        if with_system:
            user = B_SYS + self.system + E_SYS + user
        if index + 1 < len(self.turns):
            answer = self.turns[index + 1]["content"]
            if self.continuing and index + 2 == len(self.turns):
                # The partial answer, open: the reference exchange without its closing space and EOS.
                return [self.bos, *self.tokenizer.encode_plain(f"{B_INST} {user.strip()} {E_INST} {answer.strip()}")]
            text = f"{B_INST} {user.strip()} {E_INST} {answer.strip()} "
            return [self.bos, *self.tokenizer.encode_plain(text), self.eos]
        return [self.bos, *self.tokenizer.encode_plain(f"{B_INST} {user.strip()} {E_INST}")]

    def _cached_exchange(self, index: int) -> list[int]:
        if index not in self._plain:
            self._plain[index] = self._exchange(index, with_system=False)
        return self._plain[index]

    def ids(self, dropped: int) -> list[int]:
        first = 2 * dropped
        ids = self._exchange(first, with_system=self.system is not None)
        for index in range(first + 2, len(self.turns), 2):
            ids += self._cached_exchange(index)
        return ids


class _TemplateBuilder(_Builder):
    """The model's chat template, with each message's text kept apart from the template's own text.

    The template is rendered with every message's content between two markers; the rendered text
    is split at them, and only the template's pieces may hold special tokens. So a `<|im_end|>` or
    `</s>` typed in a message stays text, while benign messages get exactly the ids of the
    template's normal rendering."""

    def ids(self, dropped: int) -> list[int]:
        kept = self.turns[2 * dropped :]
        messages = ([{"role": "system", "content": self.system}] if self.system is not None else []) + kept
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        marks = _content_marks(messages)
        return self.tokenizer.encode_template(_split_marked(self._marked_rendering(messages, marks), *marks))

    def _marked_rendering(self, messages: list[dict[str, str]], marks: tuple[str, str]) -> str:
        """The template rendered with each message's text between the marks, as the template shows
        that text: templates often trim some texts, and a trimmed text must be marked trimmed, or
        its spaces would fall outside the marks."""
        plain = self._render(messages)
        # What most templates do: show every text as it is, or every text trimmed.
        for texts in ([m["content"] for m in messages], [m["content"].strip() for m in messages]):
            marked = self._render(_marked(messages, texts, marks))
            if _unmarked(marked, marks) == plain:
                return marked
        return self._render(_marked(messages, self._trimmed_one_by_one(messages, plain), marks))

    def _trimmed_one_by_one(self, messages: list[dict[str, str]], plain: str) -> list[str]:
        """Each text as shown, for templates that trim some roles' texts (or only one side)."""
        shown = []
        for i, message in enumerate(messages):
            text = message["content"]
            # Most trimmed first: a template that strips also renders a half-trimmed text the same.
            for trimmed in dict.fromkeys((text.strip(), text.rstrip(), text.lstrip())):
                changed = [*messages[:i], {**message, "content": trimmed}, *messages[i + 1 :]]
                if trimmed != text and self._render(changed) == plain:
                    text = trimmed
                    break
            shown.append(text)
        return shown

    def _render(self, messages: list[dict[str, str]]) -> str:
        try:
            return self.tokenizer.hf.apply_chat_template(
                messages,
                add_generation_prompt=not self.continuing,
                continue_final_message=self.continuing,
                tokenize=False,
            )
        except Exception as exc:  # jinja errors, template-raised exceptions
            raise PromptError(f"The model's chat template failed on these messages: {exc}") from exc


def _content_marks(messages: list[dict[str, str]]) -> tuple[str, str]:
    """Two marker strings (private-use characters) that no message contains."""
    texts = "".join(m["content"] for m in messages)
    n = 0
    while f"\ue000{n}\ue001" in texts or f"\ue002{n}\ue003" in texts:
        n += 1
    return f"\ue000{n}\ue001", f"\ue002{n}\ue003"


def _marked(messages: list[dict[str, str]], texts: list[str], marks: tuple[str, str]) -> list[dict[str, str]]:
    return [{**m, "content": marks[0] + text + marks[1]} for m, text in zip(messages, texts, strict=True)]


def _unmarked(text: str, marks: tuple[str, str]) -> str:
    return text.replace(marks[0], "").replace(marks[1], "")


def _split_marked(text: str, open_mark: str, close_mark: str) -> list[tuple[str, bool]]:
    """(piece, is_template_text) for a rendering whose message texts sit between the marks."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    while (start := text.find(open_mark, position)) >= 0:
        end = text.find(close_mark, start)
        end = len(text) if end < 0 else end
        pieces += [(text[position:start], True), (text[start + len(open_mark) : end], False)]
        position = end + len(close_mark)
    pieces.append((text[position:], True))
    return [(piece, template) for piece, template in pieces if piece]


class _PlainBuilder(_Builder):
    """Plain completion: the messages' texts joined as one document, BOS first when the model has one."""

    def __init__(self, tokenizer: Tokenizer, messages: list[dict[str, Any]], continuing: bool = False) -> None:
        super().__init__(tokenizer, messages, continuing)
        self.messages = messages
        self.max_droppable = len(messages) - 1 - self.offset

    def dropped_indices(self, dropped: int) -> list[int]:
        return list(range(self.offset, self.offset + dropped))

    def ids(self, dropped: int) -> list[int]:
        kept = ([self.system] if self.system is not None else []) + [
            m["content"] for m in self.messages[self.offset + dropped :]
        ]
        bos = [self.tokenizer.bos_id] if self.tokenizer.bos_id is not None else []
        return bos + self.tokenizer.encode_plain("\n\n".join(kept))
