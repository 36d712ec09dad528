"""Export conversations as Markdown (to read) or JSON (lossless: every branch), and import JSON.

An import is checked whole before anything is written, then written in one transaction, so a bad
file changes nothing and the error says what is wrong and where.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .db import HistoryError
from .store import ANSWER_FIELDS, HistoryStore, Message

FORMAT = "hearth.history"
VERSION = 1
CONVERSATION_KEYS = ("id", "title", "title_is_auto", "created_at", "updated_at", "model",
                     "model_revision", "system_prompt", "settings", "pinned", "active_leaf_id")
MESSAGE_KEYS = ("id", "parent_id", "role", "content", "status", "created_at", "updated_at",
                *ANSWER_FIELDS)


class ImportError_(HistoryError):
    """The file to import is not a valid Hearth history export."""


# --- JSON ---

def export_json(store: HistoryStore, conversation_ids: list[str] | None = None) -> dict[str, Any]:
    ids = conversation_ids if conversation_ids is not None else _all_ids(store)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": time.time(),
        "conversations": [_conversation_json(store, cid) for cid in ids],
    }


def _all_ids(store: HistoryStore) -> list[str]:
    return [r["id"] for r in store._query("SELECT id FROM conversations ORDER BY seq")]


def _conversation_json(store: HistoryStore, conversation_id: str) -> dict[str, Any]:
    conv = store.conversation(conversation_id)
    data = {key: getattr(conv, key) for key in CONVERSATION_KEYS}
    rows = store._query("SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,))
    data["messages"] = [{key: _value(row, key) for key in MESSAGE_KEYS} for row in rows]
    return data


def _value(row: Any, key: str) -> Any:
    value = row[key]
    return json.loads(value) if key == "settings" and value else value


def import_json(store: HistoryStore, data: Any) -> list[str]:
    """Validate an export, then add all its conversations in one transaction; their ids."""
    conversations = validate_export(data)
    existing = {r["id"] for r in store._query("SELECT id FROM conversations")}
    existing_messages = {r["id"] for r in store._query("SELECT id FROM messages")}
    imported = []
    with store.transaction() as tx:
        for conv in conversations:
            if conv["id"] in existing or any(m["id"] in existing_messages for m in conv["messages"]):
                conv = _with_new_ids(conv)  # importing twice gives a copy, never a clash
            _insert_conversation(tx, conv)
            imported.append(conv["id"])
    return imported


def _insert_conversation(tx: Any, conv: dict[str, Any]) -> None:
    values = {key: conv[key] for key in CONVERSATION_KEYS if key != "active_leaf_id"}
    values["settings"] = json.dumps(values["settings"] or {})
    values["title_is_auto"], values["pinned"] = int(values["title_is_auto"]), int(values["pinned"])
    _insert(tx, "conversations", values)
    for message in conv["messages"]:
        row = {key: message[key] for key in MESSAGE_KEYS}
        row["conversation_id"] = conv["id"]
        if isinstance(row["settings"], dict):
            row["settings"] = json.dumps(row["settings"])
        _insert(tx, "messages", row)
    tx.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (conv["active_leaf_id"], conv["id"]))


def _insert(tx: Any, table: str, values: dict[str, Any]) -> None:
    columns = ", ".join(values)
    tx.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})",
               tuple(values.values()))


def _with_new_ids(conv: dict[str, Any]) -> dict[str, Any]:
    mapping = {m["id"]: uuid.uuid4().hex for m in conv["messages"]}
    messages = [{**m, "id": mapping[m["id"]], "parent_id": mapping.get(m["parent_id"])}
                for m in conv["messages"]]
    return {**conv, "id": uuid.uuid4().hex, "messages": messages,
            "active_leaf_id": mapping.get(conv["active_leaf_id"])}


def validate_export(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportError_("This is not a Hearth history export (no \"format\": \"hearth.history\").")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ImportError_("The export has no valid version number.")
    if version > VERSION:
        raise ImportError_(f"The export is version {version}, from a newer Hearth; this one reads "
                           f"up to version {VERSION}.")
    conversations = data.get("conversations")
    if not isinstance(conversations, list):
        raise ImportError_("The export has no list of conversations.")
    seen: set[str] = set()
    message_ids: set[str] = set()
    for index, conv in enumerate(conversations, start=1):
        _check_conversation(conv, f"conversation {index}", seen, message_ids)
    return conversations


def _check_conversation(conv: Any, where: str, seen: set[str], message_ids: set[str]) -> None:
    _require(isinstance(conv, dict), f"{where} is not an object")
    _check_fields(conv, where, {"id": str, "title": str, "title_is_auto": (bool, int),
                                "created_at": (int, float), "updated_at": (int, float),
                                "system_prompt": str, "pinned": (bool, int),
                                "settings": (dict, type(None)), "model": (str, type(None)),
                                "model_revision": (str, type(None)),
                                "active_leaf_id": (str, type(None)), "messages": list})
    _require(conv["id"] not in seen, f"{where}: id {conv['id']} appears twice")
    seen.add(conv["id"])
    ids: set[str] = set()
    for index, message in enumerate(conv["messages"], start=1):
        _require(not isinstance(message, dict) or message.get("id") not in message_ids,
                 f"{where}, message {index}: its id is used by another conversation too")
        _check_message(message, f"{where}, message {index}", ids)
    message_ids.update(ids)
    leaf = conv["active_leaf_id"]
    _require(leaf is None or leaf in ids, f"{where}: active_leaf_id is not one of its messages")


def _check_message(message: Any, where: str, ids: set[str]) -> None:
    _require(isinstance(message, dict), f"{where} is not an object")
    _check_fields(message, where, {"id": str, "parent_id": (str, type(None)), "role": str,
                                   "content": str, "status": str, "created_at": (int, float),
                                   "updated_at": (int, float)})
    _require(message["role"] in ("user", "assistant"), f"{where}: role must be user or assistant")
    _require(message["status"] in ("complete", "streaming", "interrupted"), f"{where}: unknown status")
    _require(message["id"] not in ids, f"{where}: id {message['id']} appears twice")
    parent = message["parent_id"]
    _require(parent is None or parent in ids, f"{where}: its parent is not an earlier message")
    for key in ANSWER_FIELDS:
        message.setdefault(key, None)
    ids.add(message["id"])


def _check_fields(obj: dict[str, Any], where: str, types: dict[str, Any]) -> None:
    for key, expected in types.items():
        _require(key in obj, f"{where} has no {key!r}")
        value = obj[key]
        _require(isinstance(value, expected) and not (expected in (int, float, (int, float)) and isinstance(value, bool)),
                 f"{where}: {key!r} has the wrong type ({type(value).__name__})")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ImportError_(f"Cannot import: {message}. Nothing was imported.")


# --- Markdown ---

def export_markdown(store: HistoryStore, conversation_ids: list[str] | None = None) -> str:
    ids = conversation_ids if conversation_ids is not None else _all_ids(store)
    return "\n\n---\n\n".join(_conversation_markdown(store, cid) for cid in ids) + "\n"


def _conversation_markdown(store: HistoryStore, conversation_id: str) -> str:
    conv = store.conversation(conversation_id)
    lines = [f"# {conv.title}", "", f"- Created: {_when(conv.created_at)}"]
    if conv.model:
        lines.append(f"- Model: {conv.model}")
    if conv.system_prompt:
        lines += ["", "**System prompt:**", "", _quote(conv.system_prompt)]
    for message in store.active_path(conversation_id):
        lines += ["", _heading(store, message), "", message.content or "*(empty)*"]
    return "\n".join(lines)


def _heading(store: HistoryStore, message: Message) -> str:
    who = "You" if message.role == "user" else "Assistant"
    notes = []
    if message.role == "assistant" and message.generation_tps:
        notes.append(f"{message.generation_tps:.1f} tokens/s")
    if message.status == "interrupted":
        notes.append("interrupted")
    elif message.finish_reason in ("length", "cancelled"):
        notes.append("cut short" if message.finish_reason == "length" else "stopped")
    versions = len(store.siblings(message.id))
    if versions > 1:
        notes.append(f"{versions} versions; this is the active one")
    return f"## {who}" + (f" ({', '.join(notes)})" if notes else "")


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))
