"""Conversation history in one SQLite database: crash-safe, branching, searchable, exportable."""

from .db import (
    HistoryCorrupt,
    HistoryDiskFull,
    HistoryError,
    HistoryForeign,
    HistoryLocked,
    HistoryReadOnly,
    HistoryTooNew,
    HistoryUnavailable,
    Recovery,
    open_database,
)
from .store import (
    AnswerChanged,
    Conversation,
    ConversationSummary,
    HistoryStore,
    Message,
    SearchHit,
)

__all__ = [
    "AnswerChanged",
    "Conversation",
    "ConversationSummary",
    "HistoryCorrupt",
    "HistoryDiskFull",
    "HistoryError",
    "HistoryForeign",
    "HistoryLocked",
    "HistoryReadOnly",
    "HistoryStore",
    "HistoryTooNew",
    "HistoryUnavailable",
    "Message",
    "Recovery",
    "SearchHit",
    "open_database",
]
