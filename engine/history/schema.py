"""Numbered schema migrations. Never edit a released one: add the next.

Each table has an INTEGER PRIMARY KEY `seq` (stable across VACUUM, unlike an implicit rowid) that the
full-text index refers to, and a text `id` (a UUID) that everything else uses.
"""

from __future__ import annotations

import sqlite3
import time
import uuid


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Execute statements one by one: executescript() would commit the migration's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement!r}")


def _v1_conversations_and_messages(conn: sqlite3.Connection) -> None:
    _run_script(conn,
        """
        CREATE TABLE conversations (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL DEFAULT '',
            title_is_auto INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT,
            model_revision TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}',
            pinned INTEGER NOT NULL DEFAULT 0,
            active_leaf_id TEXT REFERENCES messages(id) ON DELETE SET NULL
        );
        CREATE INDEX conversations_by_recency ON conversations (pinned DESC, updated_at DESC);

        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('complete', 'streaming', 'interrupted')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model TEXT,
            model_revision TEXT,
            settings TEXT,
            seed INTEGER,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            generation_tokens INTEGER,
            ttft_s REAL,
            prompt_tps REAL,
            generation_tps REAL,
            peak_memory_gb REAL,
            error TEXT,
            writer_pid INTEGER
        );
        CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
        CREATE INDEX messages_by_parent ON messages (parent_id, seq);
        """
    )


def _v2_full_text_search(conn: sqlite3.Connection) -> None:
    # External-content FTS5 tables: the text lives once, in messages/conversations; triggers keep
    # the index in step inside the same transaction as each change.
    _run_script(conn,
        """
        CREATE VIRTUAL TABLE message_fts USING fts5(
            content, content='messages', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO message_fts(rowid, content) VALUES (new.seq, new.content);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO message_fts(message_fts, rowid, content) VALUES ('delete', old.seq, old.content);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO message_fts(message_fts, rowid, content) VALUES ('delete', old.seq, old.content);
            INSERT INTO message_fts(rowid, content) VALUES (new.seq, new.content);
        END;

        CREATE VIRTUAL TABLE title_fts USING fts5(
            title, content='conversations', content_rowid='seq',
            tokenize='unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO title_fts(rowid, title) VALUES (new.seq, new.title);
        END;
        CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
            INSERT INTO title_fts(title_fts, rowid, title) VALUES ('delete', old.seq, old.title);
        END;
        CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
            INSERT INTO title_fts(title_fts, rowid, title) VALUES ('delete', old.seq, old.title);
            INSERT INTO title_fts(rowid, title) VALUES (new.seq, new.title);
        END;

        INSERT INTO message_fts(message_fts) VALUES ('rebuild');
        INSERT INTO title_fts(title_fts) VALUES ('rebuild');
        """
    )


DEFAULT_PRESETS = (
    ("Helpful assistant", "You are a helpful, respectful and honest assistant.", True),
    ("No system prompt", "", False),
    ("Concise", "You are a helpful assistant. Answer briefly and to the point.", False),
)


def _v3_presets(conn: sqlite3.Connection) -> None:
    _run_script(conn,
        """
        CREATE TABLE presets (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            system_prompt TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}',
            is_default INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        """
    )
    now = time.time()
    for name, system_prompt, is_default in DEFAULT_PRESETS:
        conn.execute(
            "INSERT INTO presets (id, name, system_prompt, is_default, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, name, system_prompt, int(is_default), now, now),
        )


MIGRATIONS = (_v1_conversations_and_messages, _v2_full_text_search, _v3_presets)
