"""Conversation history in one SQLite database: crash-safe, branching, searchable, exportable."""

from .db import HistoryCorrupt, HistoryError, HistoryTooNew, open_database
from .store import Conversation, ConversationSummary, HistoryStore, Message, SearchHit

__all__ = [
    "Conversation",
    "ConversationSummary",
    "HistoryCorrupt",
    "HistoryError",
    "HistoryStore",
    "HistoryTooNew",
    "Message",
    "SearchHit",
    "open_database",
]
