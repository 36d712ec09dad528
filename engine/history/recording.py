"""Recording a chat turn in the history (engine/chat_session.py drives it for the app and the terminal).

The user message is committed before generation starts; the answer is created as 'streaming' and
grows through an AnswerWriter; the engine's final record closes it with its figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..events import Finished
from .db import HistoryError
from .store import Conversation, HistoryStore, Message
from .writer import AnswerWriter


def engine_messages(store: HistoryStore, conversation: Conversation) -> list[dict[str, str]]:
    """The conversation's active path as the engine's role/content list, system prompt first."""
    messages = [{"role": "system", "content": conversation.system_prompt}] if conversation.system_prompt else []
    messages += [{"role": m.role, "content": m.content} for m in store.active_path(conversation.id)]
    return messages


@dataclass
class RecordedTurn:
    user: Message | None  # the user message this turn added, if it added one
    answer: Message
    writer: AnswerWriter
    messages: list[dict[str, str]]  # what to send to the engine
    continuing: bool = False  # the engine continues the answer's text (prefix) rather than starting
    prefix: str = ""


def _last_answer(store: HistoryStore, conversation_id: str) -> Message:
    path = store.active_path(conversation_id)
    if not path or path[-1].role != "assistant":
        raise HistoryError("There is no answer to regenerate or continue yet.")
    return path[-1]


def start_continuation(store: HistoryStore, conversation_id: str) -> RecordedTurn:
    """Go on with the last answer (stopped, cut short or interrupted), in the same message."""
    answer = store.resume_answer(_last_answer(store, conversation_id).id)
    messages = engine_messages(store, store.conversation(conversation_id))
    # Trailing whitespace is dropped: the model's next word brings its own leading space.
    prefix = answer.content.rstrip()
    writer = AnswerWriter(store, answer.id, initial_text=prefix, stored_text=answer.content)
    return RecordedTurn(None, answer, writer, messages, continuing=True, prefix=prefix)


def finish_turn(store: HistoryStore, turn: RecordedTurn, result: Finished) -> None:
    """Close the answer with the engine's record."""
    turn.writer.finish(turn.prefix + result.text, **answer_figures(result))


def answer_figures(result: Finished) -> dict[str, Any]:
    return {
        "seed": result.seed,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "generation_tokens": result.generation_tokens,
        "ttft_s": result.ttft_s,
        "prompt_tps": result.prompt_tps,
        "generation_tps": result.generation_tps,
        "peak_memory_gb": result.peak_memory_gb,
        "error": result.error,
    }
