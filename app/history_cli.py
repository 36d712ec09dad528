"""`hearth history ...`: list, show, search, rename, delete, export and import conversations."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

from engine import disk_cache
from engine.errors import HearthError
from engine.history import HistoryStore
from engine.history.export import export_json, export_markdown, import_json

SHORT_ID = 8


def add_history_parser(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser("history", help="your saved conversations")
    sub = history.add_subparsers(title="history commands", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="most recent conversations, pinned first")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", help="a conversation as Markdown")
    show.add_argument("id", help="conversation id (a unique prefix is enough)")
    show.set_defaults(handler=_show)

    search = sub.add_parser("search", help="full-text search over titles and messages")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=_search)

    rename = sub.add_parser("rename", help="give a conversation a title")
    rename.add_argument("id")
    rename.add_argument("title")
    rename.set_defaults(handler=_rename)

    delete = sub.add_parser("delete", help="delete a conversation")
    delete.add_argument("id")
    delete.set_defaults(handler=_delete)

    export = sub.add_parser("export", help="one conversation, or all, as Markdown or JSON")
    export.add_argument("id", nargs="?", help="conversation id; all when left out")
    export.add_argument("--format", choices=["md", "json"], default="md")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    export.set_defaults(handler=_export)

    importing = sub.add_parser("import", help="add conversations from a Hearth JSON export")
    importing.add_argument("file")
    importing.set_defaults(handler=_import)


def open_store() -> HistoryStore:
    """The history, saying on stderr while it waits for another process, and what a damaged one
    left; a fault (locked, read-only, full disk, ...) is a HistoryError with one clear line."""
    store = HistoryStore(on_wait=lambda message: print(f"hearth: {message}", file=sys.stderr, flush=True))
    if store.recovery:
        print(f"hearth: warning: {store.recovery}", file=sys.stderr)
    return store


def _list(args: argparse.Namespace) -> int:
    with open_store() as store:
        for conv in store.list_conversations(limit=args.limit):
            pin = "*" if conv.pinned else " "
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conv.updated_at))
            print(f"{conv.id[:SHORT_ID]} {pin} {when}  {conv.title}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_store() as store:
        print(export_markdown(store, [store.resolve_id(args.id)]), end="")
    return 0


def _search(args: argparse.Namespace) -> int:
    bold, plain = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("«", "»")
    with open_store() as store:
        hits = store.search(args.query, limit=args.limit)
        for hit in hits:
            snippet = " ".join(hit.snippet.replace("\x02", bold).replace("\x03", plain).split())
            print(f"{hit.conversation_id[:SHORT_ID]}  {hit.title}\n    {snippet}")
        if not hits:
            print("No matches.", file=sys.stderr)
    return 0


def _rename(args: argparse.Namespace) -> int:
    with open_store() as store:
        store.rename(store.resolve_id(args.id), args.title)
    return 0


def _delete(args: argparse.Namespace) -> int:
    with open_store() as store:
        conversation_id = store.resolve_id(args.id)
        title = store.conversation(conversation_id).title
        store.delete_conversation(conversation_id)
    try:
        disk_cache.forget_conversation(conversation_id, deleted=True)  # its KV caches hold its words
    except OSError as exc:
        print(f"Its saved conversation caches could not be deleted: {exc}", file=sys.stderr)
    print(f"Deleted {conversation_id[:SHORT_ID]} ({title}).", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    with open_store() as store:
        ids = [store.resolve_id(args.id)] if args.id else None
        if args.format == "json":
            text = json.dumps(export_json(store, ids), ensure_ascii=False, indent=1) + "\n"
        else:
            text = export_markdown(store, ids)
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside the target, then rename: never a half-written file. The file
    gets the user's normal permissions (0666 less the umask), as any file they save."""
    path = path.expanduser()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise HearthError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HearthError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _import(args: argparse.Namespace) -> int:
    try:
        data = json.loads(Path(args.file).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise HearthError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HearthError(f"{args.file} is not a JSON file: {exc}") from exc
    with open_store() as store:
        ids = import_json(store, data)
    print(f"Imported {len(ids)} conversation(s).", file=sys.stderr)
    return 0
