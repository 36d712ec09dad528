"""A small Hugging Face Hub look-alike for tests: real HTTP on 127.0.0.1, standard library only.

Hearth downloads models with the real ``huggingface_hub`` client (2.4, on ``httpx2``). There is no network in
the test environment, so tests point that client at this server with ``HF_ENDPOINT`` and exercise the real
download path: metadata HEAD requests, streamed GETs, ``Range`` resumes, error mapping, the cache layout.

Quick use (in-process)::

    from hub_server import HubServer, configure_hf_client

    def test_download(tmp_path, monkeypatch):
        with HubServer() as hub:
            hub.add_repo("mlx-community/Tiny-4bit", {"config.json": b"{}", "model.safetensors": weights})
            configure_hf_client(monkeypatch, hub.endpoint, tmp_path / "hf-home")
            from huggingface_hub import hf_hub_download
            path = hf_hub_download("mlx-community/Tiny-4bit", "model.safetensors")

In a subprocess, pass ``hub.client_env(hf_home)`` (merged into ``os.environ``) instead.

Environment a test must give the real client (see ``client_env``):

* ``HF_ENDPOINT=<hub.endpoint>``        where the client sends every request
* ``HF_HOME=<tmp>`` (and/or ``HF_HUB_CACHE=<tmp>/hub``)  a private cache, token file and xet cache
* ``HF_HUB_DISABLE_XET=1``              plain HTTP downloads (this server never sends ``X-Xet-*`` headers anyway)
* ``HF_HUB_DISABLE_TELEMETRY=1``, ``HF_HUB_OFFLINE=0`` (tests/conftest.py sets ``HF_HUB_OFFLINE=1`` by default!)
* no ``HF_TOKEN`` / ``HUGGING_FACE_HUB_TOKEN`` / ``HF_OIDC_RESOURCE`` unless the test means it

IMPORTANT - huggingface_hub reads those variables ONCE, at import, into ``huggingface_hub.constants`` (and a few
module globals copy them again). Inside a pytest run some other test module has usually imported it already (via
transformers / mlx_lm at collection time), so setting env vars in a test is NOT enough in-process. Use
``configure_hf_client(monkeypatch, endpoint, hf_home)``: it sets the env vars (for subprocesses and late
importers) AND patches every import-time copy that matters for downloads:

* ``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (``hf_hub_url`` builds resolve URLs from
  the template, not from ENDPOINT);
* ``huggingface_hub.hf_api.api.endpoint`` - the module-level ``HfApi()`` behind ``huggingface_hub.model_info``,
  ``list_models``, ``list_repo_tree``... captured ``constants.ENDPOINT`` when it was created. ``HfApi()`` objects
  created later read ``constants.ENDPOINT`` and are fine;
* ``constants.HF_HOME``, ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_ASSETS_CACHE``, ``HF_XET_CACHE``,
  ``HF_TOKEN_PATH``, ``HF_STORED_TOKENS_PATH`` and ``huggingface_hub.utils._cache_manager.HF_HUB_CACHE`` (the
  default of ``scan_cache_dir()``, imported by value);
* ``constants.HF_HUB_OFFLINE`` (checked on every request by the client's event hook), ``HF_HUB_DISABLE_XET``,
  ``HF_HUB_DISABLE_TELEMETRY``, ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` (left False);
* optionally ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` (read timeout of file GETs, default 10 s),
  ``constants.HF_HUB_ETAG_TIMEOUT`` (HEAD timeout) and ``constants.DOWNLOAD_CHUNK_SIZE`` (see below);
* ``utils._http._HUB_ORIGINS`` / ``constants.HF_URL_HOSTS`` get the server origin (only matters for redirects).

Repo content. ``add_repo`` publishes a folder or a ``{path: bytes | str | Path}`` dict. Each file gets its size,
its git blob sha1 (``sha1(b"blob %d\\0" % len(data) + data)``) and, when it is stored with LFS, its sha256. The LFS
rule (``is_lfs_path``): the suffix is in ``LFS_SUFFIXES`` (weights and archives: .safetensors .gguf .npz .bin
.model .pt .pth .ckpt .h5 .msgpack .onnx .pkl .zip .tar .gz ...) or the file is larger than 10 MiB
(``LFS_SIZE_THRESHOLD``, what the Hub enforces for non-LFS files); ``lfs_files=`` forces more paths. As on the
real Hub, the ``blobId``/tree ``oid`` of an LFS file is the git sha1 of its LFS *pointer* file, not of the content
(``HubFile.git_sha1`` always holds the content sha1), and the resolve ``ETag`` is the sha256 for LFS files and the
content git sha1 otherwise. A commit sha (40 hex, stable for the same repo id + content) is made up; ``revision``
names a branch pointing at it, and the commit sha (or a unique prefix of 7+ chars) works as a revision too.
Publishing again under the same branch moves it; older commits stay reachable by sha. Folder files are read
lazily from disk (hashed at publish time): do not modify them afterwards.

Endpoints (models only): ``GET /api/models`` (search, author, filter [all must match tags], sort, direction,
limit, full, expand, gated; ``Link: rel="next"`` pagination), ``GET /api/models/{id}[/revision/{rev}]``
(``blobs=true`` for sizes/blobIds/lfs, ``expand``), ``GET /api/models/{id}/tree/{rev}[/{path}]`` (``recursive``),
``GET /api/models/{id}/refs``, ``GET /api/whoami-v2``, ``HEAD``/``GET /{id}/resolve/{rev}/{path}`` (ETag,
X-Repo-Commit, X-Linked-Etag/X-Linked-Size for LFS, Content-Length, Accept-Ranges, 206 ``Range`` support, 416).
Errors carry ``X-Error-Code`` / ``X-Error-Message`` like the Hub: RepoNotFound (404; also for private repos
without a valid token), RevisionNotFound (404), EntryNotFound (404, with X-Repo-Commit), GatedRepo (401 without a
token, 403 with a valid token that is not in the repo's ``allowed_tokens``), and 401 "Invalid credentials in
Authorization header" for any request carrying an unknown bearer token (the Hub does that even for public repos;
``HubServer(reject_invalid_tokens=False)`` turns it off). Metadata of gated repos is public; only files are gated.

Fault injection (thread-safe, may be changed while a download runs; ``times=None`` means forever; a file
pattern matches the path in the repo, ``"<repo_id>/<path>"`` or a trailing ``/<name>``):

* ``drop_after(file, nbytes, times=1, reset=False)`` - a GET of the file sends ``nbytes`` of its body (counted
  from the start of *this* response) and then closes the connection (FIN; ``reset=True`` sends a TCP RST).
* ``stall(file, after_bytes, seconds, times=1)`` - pause ``seconds`` after ``after_bytes`` of the body.
* ``corrupt(file, times=1)`` - serve every byte inverted (same length, same headers/ETag).
* ``fail(path_substring, status, times=1, method=None, headers=None)`` - answer matching requests with an error.
* ``throttle(bytes_per_second)`` - rate-limit every file body (per response); ``None``/0 lifts it.

A fault is only used up by a request it actually affects. ``requests`` is a snapshot of the log of
``Request(method, path, range)`` tuples (path as sent, percent-encoded, with query); ``bytes_served(file)`` counts
the body bytes of a file written to sockets (what a resume costs); ``clear_requests()`` empties both.

Notes on huggingface_hub 2.4's download path that tests must know (each is pinned by tests/test_hub_server.py):

* ``hf_hub_download`` = 1 ``HEAD /{id}/resolve/{rev}/{file}`` then 1 ``GET`` of the same URL. A revision that is
  a commit sha whose file is already in ``snapshots/`` makes no request at all; a cached branch still costs the
  HEAD. The HEAD is first tried without retry; if it fails (5xx/429/timeout/connect error, 401, gated...) and a
  cached copy for that revision exists (``refs/<rev>`` -> ``snapshots/``), that copy is returned silently;
  otherwise 5xx/429/timeouts are retried with backoff (1, 2, 4... s) and other errors raised. With
  ``force_download=True`` a failed HEAD raises ``ValueError("Force download failed...")`` whose ``__cause__`` is
  the real error (e.g. GatedRepoError).
* The body goes to ``blobs/<etag>.<8 hex>.incomplete`` (unique per attempt, deleted on failure: nothing is resumed
  across calls), then is renamed to ``blobs/<etag>``; ``snapshots/<commit>/<file>`` is a relative symlink to it,
  ``refs/<branch>`` holds the commit, a 404 EntryNotFound is remembered in ``.no_exist/<commit>/<file>``.
* The client only compares the byte count with the size announced by the HEAD (``OSError: Consistency check
  failed``); it never checks sha256/sha1, so ``corrupt()`` goes unnoticed by huggingface_hub itself.
* Within one GET, an early close (``httpx2.RemoteProtocolError``), a connect error or a read timeout
  (``HF_HUB_DOWNLOAD_TIMEOUT``, 10 s) is retried up to 5 times, after ``time.sleep(1)``, with ``Range: bytes=N-``.
  ``N`` counts bytes already written, and the body is consumed in ``DOWNLOAD_CHUNK_SIZE`` (10 MiB) pieces, so
  ``N`` is rounded down to a multiple of 10 MiB: a break in the first 10 MiB restarts from 0 without a Range
  header. A TCP reset (``httpx2.ReadError``) is NOT retried and escapes from ``hf_hub_download``. A 5xx on the
  GET is not retried either (only 408 and 429 are, honouring ``Retry-After`` + 1 s).
* ``snapshot_download`` = ``GET /api/models/{id}/revision/{rev}`` + ``GET /api/models/{id}/tree/{commit}?
  recursive=true&expand=false`` + HEAD and GET per file with the commit sha as revision (8 threads); it also
  writes ``trees/<commit>.json`` next to ``blobs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

__all__ = [
    "LFS_SIZE_THRESHOLD",
    "LFS_SUFFIXES",
    "HubCommit",
    "HubFile",
    "HubRepo",
    "HubServer",
    "Request",
    "client_env",
    "configure_hf_client",
    "git_blob_sha1",
    "is_lfs_path",
    "lfs_pointer",
    "running_hub",
]

HOST = "127.0.0.1"

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = frozenset(
    {
        ".safetensors", ".gguf", ".npz", ".npy", ".bin", ".model", ".pt", ".pth", ".ckpt", ".h5",
        ".msgpack", ".onnx", ".pkl", ".pickle", ".joblib", ".tflite", ".mlmodel", ".ot", ".arrow",
        ".parquet", ".zip", ".tar", ".tgz", ".gz", ".xz", ".zst", ".7z", ".bz2", ".rar",
    }
)  # fmt: skip

_READ_CHUNK = 1024 * 1024
_SEND_CHUNK = 64 * 1024
_INVERT = bytes(i ^ 0xFF for i in range(256))
_FIXED_EPOCH = "2024-01-01T00:00:00.000Z"
_AUTO: Any = object()  # "work it out" default of add_repo

Request = namedtuple("Request", ["method", "path", "range"])
Request.__doc__ = "One logged request: method, raw path (percent-encoded, with query) and the Range header or None."


# --------------------------------------------------------------------------------------------------
# Repo content
# --------------------------------------------------------------------------------------------------


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub calls ``blobId`` / ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file stored in git for an LFS file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def is_lfs_path(path: str, size: int) -> bool:
    """The rule this server uses to decide which files are stored with LFS (see module docstring)."""
    suffix = os.path.splitext(path)[1].lower()
    return suffix in LFS_SUFFIXES or size > LFS_SIZE_THRESHOLD


@dataclass(frozen=True)
class HubFile:
    """One file of a commit. ``etag`` is what the resolve endpoint announces (and the client names blobs after)."""

    path: str
    size: int
    git_sha1: str  # git blob sha1 of the content
    sha256: str | None  # set iff the file is stored with LFS
    source: bytes | Path = field(repr=False)

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def pointer(self) -> bytes | None:
        return lfs_pointer(self.sha256, self.size) if self.sha256 is not None else None

    @property
    def pointer_size(self) -> int | None:
        return len(self.pointer) if self.sha256 is not None else None

    @property
    def blob_id(self) -> str:
        """The git oid the Hub reports (``blobId``, tree ``oid``): of the LFS pointer for LFS files."""
        pointer = self.pointer
        return git_blob_sha1(pointer) if pointer is not None else self.git_sha1

    @property
    def etag(self) -> str:
        return self.sha256 if self.sha256 is not None else self.git_sha1

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        end = self.size if end is None else end
        if isinstance(self.source, bytes):
            return self.source[start:end]
        with open(self.source, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def iter_chunks(self, start: int, end: int, chunk: int = _READ_CHUNK) -> Iterator[bytes]:
        pos = start
        while pos < end:
            n = min(chunk, end - pos)
            yield self.read(pos, pos + n)
            pos += n

    @classmethod
    def build(cls, path: str, source: bytes | str | Path, *, force_lfs: bool = False) -> HubFile:
        if isinstance(source, str):
            source = source.encode()
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = bytes(source)
            size = len(source)
            sha1 = git_blob_sha1(source)
            sha256 = hashlib.sha256(source).hexdigest()
        else:
            source = Path(source)
            size = source.stat().st_size
            h1 = hashlib.sha1(b"blob %d\0" % size)
            h256 = hashlib.sha256()
            with open(source, "rb") as f:
                while block := f.read(_READ_CHUNK):
                    h1.update(block)
                    h256.update(block)
            sha1, sha256 = h1.hexdigest(), h256.hexdigest()
        lfs = force_lfs or is_lfs_path(path, size)
        return cls(
            path=path, size=size, git_sha1=sha1, sha256=sha256 if lfs else None, source=source
        )


@dataclass
class HubCommit:
    sha: str
    files: dict[str, HubFile]
    last_modified: str

    def dirs(self) -> list[str]:
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return sorted(out)


@dataclass
class HubRepo:
    repo_id: str
    private: bool = False
    gated: str | bool = False  # False, "auto" or "manual" (as the Hub reports it)
    allowed_tokens: set[str] | None = (
        None  # None: any token of server.tokens may open gated/private content
    )
    tags: list[str] = field(default_factory=list)
    library_name: str | None = None
    pipeline_tag: str | None = None
    card_data: dict | None = None
    downloads: int = 0
    likes: int = 0
    created_at: str = _FIXED_EPOCH
    default_branch: str = "main"
    commits: dict[str, HubCommit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit sha

    @property
    def author(self) -> str | None:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else None

    def resolve(self, revision: str) -> HubCommit | None:
        sha = self.refs.get(revision)
        if sha is None and revision.startswith("refs/heads/"):
            sha = self.refs.get(revision[len("refs/heads/") :])
        if sha is None and re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [c for c in self.commits if c.startswith(revision)]
            sha = matches[0] if len(matches) == 1 else None
        return self.commits.get(sha) if sha else None

    def head(self) -> HubCommit | None:
        return self.resolve(self.default_branch)


def _iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"


def _front_matter(readme: bytes) -> dict:
    """A deliberately tiny YAML front-matter reader: ``key: value``, ``key: [a, b]`` and ``- item`` lists."""
    text = readme.decode("utf-8", "replace")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    out: dict[str, Any] = {}
    key = None
    for line in text[3:end].splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        stripped = line.strip()
        if stripped.startswith("- ") and key is not None:
            if not isinstance(out.get(key), list):
                out[key] = []
            out[key].append(stripped[2:].strip().strip("'\""))
            continue
        if line[0] in " \t" or ":" not in line:
            continue  # nested structure we do not understand
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if value.startswith("[") and value.endswith("]"):
            out[key] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
        elif value:
            out[key] = value.strip("'\"")
        else:
            out[key] = None
    return out


def _safetensors_parameters(files: Iterable[HubFile]) -> dict | None:
    params: dict[str, int] = {}
    for f in files:
        if not f.path.endswith(".safetensors") or f.size < 8:
            continue
        try:
            (n,) = struct.unpack("<Q", f.read(0, 8))
            if n > 25_000_000 or 8 + n > f.size:
                continue
            header = json.loads(f.read(8, 8 + n))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                count = 1
                for dim in info["shape"]:
                    count *= int(dim)
                params[info["dtype"]] = params.get(info["dtype"], 0) + count
        except Exception:
            continue
    return {"parameters": params, "total": sum(params.values())} if params else None


def _json_file(files: Mapping[str, HubFile], name: str) -> dict | None:
    f = files.get(name)
    if f is None or f.size > 5_000_000:
        return None
    try:
        data = json.loads(f.read())
    except Exception:
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


@dataclass
class _Fault:
    kind: str  # drop | stall | corrupt | fail
    pattern: str
    remaining: int | None
    nbytes: int = 0
    seconds: float = 0.0
    status: int = 0
    method: str | None = None
    headers: dict[str, str] | None = None
    reset: bool = False


def _file_matches(pattern: str, repo_id: str, path: str) -> bool:
    return pattern == path or pattern == f"{repo_id}/{path}" or path.endswith("/" + pattern)


class _HubError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = (
        False  # HubServer.stop() closes connections and joins the handler threads itself
    )
    allow_reuse_address = False
    hub: HubServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which may do a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        t = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"hub-server:{self.server_port}:conn",
            daemon=True,
        )
        with self.hub._lock:
            self.hub._conns.add(request)
            self.hub._conn_threads.add(t)
        t.start()

    def _serve_connection(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.hub._lock:
                self.hub._conns.discard(request)
                self.hub._conn_threads.discard(threading.current_thread())

    def handle_error(self, request, client_address) -> None:  # noqa: ARG002 - quiet: clients vanish in tests
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HearthTestHub/1.0"
    timeout = 120  # idle keep-alive connections give up eventually; stop() closes them anyway
    server: _HTTPServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - silence stderr logging
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def do_GET(self) -> None:
        self.server.hub._handle(self, "GET")

    def do_HEAD(self) -> None:
        self.server.hub._handle(self, "HEAD")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hub._handle(self, "POST")


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class HubServer:
    """A Hub-like HTTP server on 127.0.0.1 (ephemeral port). Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        user: str = "hearth-tester",
        tokens: Iterable[str] = (),
        reject_invalid_tokens: bool = True,
        page_size: int = 1000,
    ) -> None:
        self.tokens: set[str] = set(tokens)
        self.user = user
        self.reject_invalid_tokens = reject_invalid_tokens
        self.page_size = page_size
        self.internal_errors: list[str] = []  # tracebacks of server bugs (answered with 500)
        self._lock = threading.RLock()
        self._repos: dict[str, HubRepo] = {}
        self._faults: list[_Fault] = []
        self._throttle: float | None = None
        self._log: list[Request] = []
        self._served: dict[tuple[str, str], int] = {}  # (repo_id, path) -> body bytes written
        self._bodies_in_flight = 0
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> HubServer:
        if self._httpd is not None:
            return self
        self._stop_event = threading.Event()
        httpd = _HTTPServer((HOST, 0), _Handler)
        httpd.hub = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"hub-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop_event.set()  # wakes stalls and throttling
        httpd.shutdown()
        with self._lock:
            conns, threads = list(self._conns), list(self._conn_threads)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        deadline = time.monotonic() + timeout
        for t in [self._thread, *threads]:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("HubServer is not running")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def threads(self) -> list[threading.Thread]:
        """Threads of this server still alive (empty after stop())."""
        with self._lock:
            conn_threads = list(self._conn_threads)
        return [t for t in [self._thread, *conn_threads] if t is not None and t.is_alive()]

    def client_env(self, hf_home: str | os.PathLike, **extra: str) -> dict[str, str]:
        return client_env(self.endpoint, hf_home, **extra)

    # ---- content ---------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        folder_or_files: str | os.PathLike | Mapping[str, bytes | str | os.PathLike],
        *,
        revision: str = "main",
        gated: bool | str = False,
        private: bool = False,
        allowed_tokens: Iterable[str] | None = None,
        tags: Iterable[str] = (),
        library_name: str | None = _AUTO,  # type: ignore[assignment]
        pipeline_tag: str | None = _AUTO,  # type: ignore[assignment]
        card_data: dict | None = None,
        downloads: int = 0,
        likes: int = 0,
        lfs_files: Iterable[str] = (),
    ) -> str:
        """Publish (or update) a model repo; returns the commit sha that ``revision`` now points to.

        ``folder_or_files`` is a folder (read recursively, ``.git/`` and ``.cache/huggingface/`` skipped) or a
        mapping of repo path -> content: ``bytes``, ``str`` (the text itself, UTF-8) or ``pathlib.Path`` (a file
        to serve). ``gated=True`` means "manual"; ``allowed_tokens`` restricts gated/private access to those
        tokens (default: any token in ``server.tokens``). ``lfs_files`` forces paths to be stored with LFS.

        ``library_name``/``pipeline_tag`` default to the README front matter, else "mlx" / "text-generation".
        Repo-level settings (gated, private, tags, ...) are replaced by each call.
        """
        files = self._collect(folder_or_files, set(lfs_files))
        digest = hashlib.sha1(f"hub-server-commit\0{repo_id}\0".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{files[path].etag}\n".encode())
        sha = digest.hexdigest()
        front = _front_matter(files["README.md"].read()) if "README.md" in files else {}
        card = dict(card_data) if card_data is not None else (front or None)
        if library_name is _AUTO:
            library_name = (card or {}).get("library_name") or "mlx"
        if pipeline_tag is _AUTO:
            pipeline_tag = (card or {}).get("pipeline_tag") or "text-generation"
        if gated is True:
            gated = "manual"
        all_tags: list[str] = []
        card_tags = (card or {}).get("tags") or []
        for t in [
            *tags,
            *(card_tags if isinstance(card_tags, list) else [card_tags]),
            library_name,
        ]:
            if t and t not in all_tags:
                all_tags.append(t)
        for suffix, tag in ((".safetensors", "safetensors"), (".gguf", "gguf")):
            if any(p.endswith(suffix) for p in files) and tag not in all_tags:
                all_tags.append(tag)
        if pipeline_tag and pipeline_tag not in all_tags:
            all_tags.append(pipeline_tag)
        if (card or {}).get("license") and isinstance(card["license"], str):
            all_tags.append(f"license:{card['license']}")
        all_tags.append("region:us")
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = HubRepo(repo_id=repo_id, created_at=_iso_now())
                self._repos[repo_id] = repo
            repo.private, repo.gated = bool(private), gated or False
            repo.allowed_tokens = set(allowed_tokens) if allowed_tokens is not None else None
            repo.tags, repo.library_name, repo.pipeline_tag = all_tags, library_name, pipeline_tag
            repo.card_data, repo.downloads, repo.likes = card, downloads, likes
            if sha not in repo.commits:
                repo.commits[sha] = HubCommit(sha=sha, files=files, last_modified=_iso_now())
            repo.refs[revision] = sha
            if "main" not in repo.refs:
                repo.default_branch = next(iter(repo.refs))
            else:
                repo.default_branch = "main"
        return sha

    def remove_repo(self, repo_id: str) -> None:
        with self._lock:
            self._repos.pop(repo_id, None)

    def repo(self, repo_id: str) -> HubRepo:
        with self._lock:
            return self._repos[repo_id]

    def commit_sha(self, repo_id: str, revision: str = "main") -> str:
        commit = self.repo(repo_id).resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return commit.sha

    def file(self, repo_id: str, path: str, revision: str = "main") -> HubFile:
        commit = self.repo(repo_id).resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return commit.files[path]

    def url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    @staticmethod
    def _collect(source, force_lfs: set[str]) -> dict[str, HubFile]:
        files: dict[str, HubFile] = {}
        if isinstance(source, Mapping):
            for name, data in source.items():
                path = str(name).replace("\\", "/").lstrip("/")
                files[path] = HubFile.build(path, data, force_lfs=path in force_lfs)
            return files
        root = Path(source)
        if not root.is_dir():
            raise NotADirectoryError(root)
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if not p.is_file() or rel.startswith(".git/") or rel.startswith(".cache/huggingface/"):
                continue
            files[rel] = HubFile.build(rel, p, force_lfs=rel in force_lfs)
        return files

    # ---- faults ----------------------------------------------------------------------------------

    def drop_after(
        self, filename: str, nbytes: int, times: int | None = 1, *, reset: bool = False
    ) -> None:
        self._add_fault(_Fault("drop", filename, times, nbytes=nbytes, reset=reset))

    def stall(self, filename: str, after_bytes: int, seconds: float, times: int | None = 1) -> None:
        self._add_fault(_Fault("stall", filename, times, nbytes=after_bytes, seconds=seconds))

    def corrupt(self, filename: str, times: int | None = 1) -> None:
        self._add_fault(_Fault("corrupt", filename, times))

    def fail(
        self,
        path_substring: str,
        status: int,
        times: int | None = 1,
        *,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._add_fault(
            _Fault(
                "fail",
                path_substring,
                times,
                status=status,
                method=method,
                headers=dict(headers or {}),
            )
        )

    def throttle(self, bytes_per_second: float | None) -> None:
        with self._lock:
            self._throttle = bytes_per_second or None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._throttle = None

    def pending_faults(self) -> list[tuple[str, str, int | None]]:
        """(kind, pattern, remaining) of faults not used up yet."""
        with self._lock:
            return [(f.kind, f.pattern, f.remaining) for f in self._faults]

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining <= 0:
            return
        with self._lock:
            self._faults.append(fault)

    def _take(self, kind: str, accept: Callable[[_Fault], bool]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and accept(fault):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return replace(fault)
        return None

    # ---- request log -----------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Empty the request log and the counts of bytes served."""
        with self._lock:
            self._log.clear()
            self._served.clear()

    def bodies_in_flight(self) -> int:
        """File bodies being sent right now (a response whose client left ends at its next write)."""
        with self._lock:
            return self._bodies_in_flight

    def bytes_served(self, filename: str) -> int:
        """Body bytes of matching files handed to the socket (every GET, partial ones included)
        since the start or the last clear_requests(); ``filename`` matches as in the faults."""
        with self._lock:
            return sum(n for (repo_id, path), n in self._served.items()
                       if _file_matches(filename, repo_id, path))

    def requests_for(self, substring: str, method: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if (substring in r.path or substring in unquote(r.path))
            and (method is None or r.method == method)
        ]

    # ---- request handling ------------------------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        with self._lock:
            self._log.append(Request(method, h.path, h.headers.get("Range")))
        try:
            split = urlsplit(h.path)
            raw_segs = [s for s in split.path.split("/") if s != ""]
            segs = [unquote(s) for s in raw_segs]
            query = {k: v for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            fault = self._take(
                "fail",
                lambda f: (
                    (f.pattern in h.path or f.pattern in unquote(h.path))
                    and (f.method in (None, method))
                ),
            )
            if fault is not None:
                raise _HubError(
                    fault.status, f"Injected failure ({fault.status})", headers=fault.headers
                )
            token = self._token_of(h)
            if segs[:2] == ["api", "whoami-v2"]:
                return self._whoami(h, method, token)
            if segs[:1] == ["api"]:
                if len(segs) >= 2 and segs[1] in ("datasets", "spaces", "kernels"):
                    raise _HubError(404, "Repository not found", "RepoNotFound")
                if segs == ["api", "models"]:
                    return self._list_models(h, method, query, token)
                if len(segs) >= 3 and segs[1] == "models":
                    return self._model_api(h, method, segs[2:], query, token)
                raise _HubError(404, "Sorry, we can't find the page you are looking for.")
            if segs and segs[0] in ("datasets", "spaces", "kernels"):
                raise _HubError(404, "Repository not found", "RepoNotFound")
            for i in (1, 2):
                if len(segs) > i + 1 and segs[i] == "resolve":
                    return self._resolve(
                        h, method, "/".join(segs[:i]), segs[i + 1], "/".join(segs[i + 2 :]), token
                    )
            raise _HubError(404, "Sorry, we can't find the page you are looking for.")
        except _HubError as e:
            self._send_error(h, method, e)
        except (ConnectionError, TimeoutError):
            h.close_connection = True
        except Exception as e:
            # A bug in this server: answer 500 and keep the traceback for the test to show.
            with self._lock:
                self.internal_errors.append(traceback.format_exc())
            self._send_error(h, method, _HubError(500, f"hub_server internal error: {e!r}"))

    def _token_of(self, h: _Handler) -> str | None:
        auth = h.headers.get("Authorization") or ""
        if not auth.lower().startswith("bearer "):
            return None
        token = auth[7:].strip()
        if token in self.tokens:
            return token
        if self.reject_invalid_tokens:
            raise _HubError(401, "Invalid credentials in Authorization header")
        return None

    def _get_repo(self, repo_id: str, token: str | None) -> HubRepo:
        with self._lock:
            repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not self._may_access(repo, token)):
            raise _HubError(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _may_access(repo: HubRepo, token: str | None) -> bool:
        return token is not None and (repo.allowed_tokens is None or token in repo.allowed_tokens)

    def _get_commit(self, repo: HubRepo, revision: str) -> HubCommit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ---- /api ------------------------------------------------------------------------------------

    def _whoami(self, h: _Handler, method: str, token: str | None) -> None:
        if token is None:
            raise _HubError(401, "Invalid credentials in Authorization header")
        self._send_json(
            h,
            method,
            {
                "type": "user",
                "id": hashlib.sha1(self.user.encode()).hexdigest()[:24],
                "name": self.user,
                "fullname": self.user.replace("-", " ").title(),
                "email": f"{self.user}@example.invalid",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {
                        "displayName": "test-token",
                        "role": "read",
                        "createdAt": _FIXED_EPOCH,
                    },
                },
            },
        )

    def _model_api(
        self, h: _Handler, method: str, rest: list[str], query: dict, token: str | None
    ) -> None:
        subpaths = {"revision", "tree", "refs", "paths-info", "commits", "resolve"}
        n = 2 if len(rest) >= 2 and rest[1] not in subpaths else 1
        repo = self._get_repo("/".join(rest[:n]), token)
        rest = rest[n:]
        if not rest:
            return self._send_json(
                h,
                method,
                self._model_json(repo, self._get_commit(repo, repo.default_branch), query),
            )
        if rest[0] == "revision" and len(rest) >= 2:
            commit = self._get_commit(repo, "/".join(rest[1:]))
            return self._send_json(h, method, self._model_json(repo, commit, query))
        if rest[0] == "tree" and len(rest) >= 2:
            commit = self._get_commit(repo, rest[1])
            return self._tree(h, method, repo, commit, "/".join(rest[2:]), query)
        if rest[0] == "refs":
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                for name, sha in repo.refs.items()
            ]
            body = {"branches": branches, "converts": [], "tags": []}
            if _truthy(query.get("include_prs")):
                body["pullRequests"] = []
            return self._send_json(h, method, body)
        raise _HubError(404, "Sorry, we can't find the page you are looking for.")

    def _model_json(
        self, repo: HubRepo, commit: HubCommit, query: dict, *, listing: bool = False
    ) -> dict:
        blobs = _truthy(query.get("blobs"))
        siblings = []
        for f in sorted(commit.files.values(), key=lambda f: f.path):
            s: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                s["blobId"] = f.blob_id
                s["size"] = f.size
                if f.is_lfs:
                    s["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            siblings.append(s)
        config = _json_file(commit.files, "config.json")
        tok_config = _json_file(commit.files, "tokenizer_config.json")
        cfg_out: dict[str, Any] | None = None
        if config is not None:
            cfg_out = {
                k: config[k] for k in ("architectures", "model_type", "quantization") if k in config
            }
            if tok_config is not None:
                keys = ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template")
                cfg_out["tokenizer_config"] = {k: tok_config[k] for k in keys if k in tok_config}
        full = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.author,
            "sha": commit.sha,
            "lastModified": commit.last_modified,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": repo.downloads,
            "downloadsAllTime": repo.downloads,
            "likes": repo.likes,
            "trendingScore": 0,
            "tags": list(repo.tags),
            "pipeline_tag": repo.pipeline_tag,
            "library_name": repo.library_name,
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if repo.card_data is not None:
            full["cardData"] = repo.card_data
        if cfg_out is not None:
            full["config"] = cfg_out
        safetensors = _safetensors_parameters(commit.files.values())
        if safetensors is not None:
            full["safetensors"] = safetensors
        full = {k: v for k, v in full.items() if v is not None or k in ("author",)}
        expand = query.get("expand") or query.get("expand[]")
        if expand:
            wanted = {e for v in expand for e in v.split(",")}
            return {k: v for k, v in full.items() if k in ("_id", "id") or k in wanted}
        if listing and not _truthy(query.get("full")):
            keys = ("_id", "id", "modelId", "likes", "trendingScore", "private", "downloads", "tags",
                    "pipeline_tag", "library_name", "createdAt", "gated")  # fmt: skip
            out = {k: full[k] for k in keys if k in full}
            if _truthy(query.get("cardData")) and "cardData" in full:
                out["cardData"] = full["cardData"]
            if _truthy(query.get("config")) and "config" in full:
                out["config"] = full["config"]
            return out
        return full

    def _list_models(self, h: _Handler, method: str, query: dict, token: str | None) -> None:
        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        search = (first("search") or "").lower()
        author = first("author")
        filters = [f.lower() for v in query.get("filter", []) for f in v.split(",") if f]
        gated = first("gated")
        with self._lock:
            repos = list(self._repos.values())
        items = []
        for repo in repos:
            commit = repo.head()
            if commit is None or (repo.private and not self._may_access(repo, token)):
                continue
            if search and search not in repo.repo_id.lower():
                continue
            if author and repo.author != author:
                continue
            tags = {t.lower() for t in repo.tags}
            if any(f not in tags and f != (repo.library_name or "").lower() for f in filters):
                continue
            if gated is not None and bool(repo.gated) != _truthy([gated]):
                continue
            items.append((repo, commit))
        sort = first("sort")
        if sort:
            keymap = {"downloads": "downloads", "likes": "likes", "lastModified": "lastModified",
                      "createdAt": "createdAt", "trendingScore": "downloads", "id": "id"}  # fmt: skip
            key = keymap.get(sort, "downloads")

            def sort_key(item):
                repo, commit = item
                return {"downloads": repo.downloads, "likes": repo.likes, "lastModified": commit.last_modified,
                        "createdAt": repo.created_at, "id": repo.repo_id}[key]  # fmt: skip

            items.sort(key=sort_key, reverse=first("direction") != "1")
        else:
            items.sort(key=lambda item: item[0].repo_id)
        limit = int(first("limit") or self.page_size)
        page_size = max(1, min(limit, self.page_size))
        cursor = int(first("cursor") or 0)
        page = items[cursor : cursor + page_size]
        headers = {}
        if cursor + page_size < len(items):
            next_query = {k: v for k, v in query.items() if k != "cursor"}
            next_query["cursor"] = [str(cursor + page_size)]
            url = f"{self._base_url(h)}/api/models?{urlencode(next_query, doseq=True)}"
            headers["Link"] = f'<{url}>; rel="next"'
        body = [self._model_json(repo, commit, query, listing=True) for repo, commit in page]
        self._send_json(h, method, body, headers=headers)

    def _tree(
        self, h: _Handler, method: str, repo: HubRepo, commit: HubCommit, path: str, query: dict
    ) -> None:
        path = path.strip("/")
        recursive = _truthy(query.get("recursive"))
        dirs = commit.dirs()
        if path and path not in dirs:
            if path in commit.files:
                raise _HubError(400, f"{path} is a file, not a directory")
            raise _HubError(404, f'{path} does not exist on "{commit.sha}"', "EntryNotFound")
        prefix = path + "/" if path else ""

        def wanted(p: str) -> bool:
            if not p.startswith(prefix):
                return False
            return recursive or "/" not in p[len(prefix) :]

        entries: list[dict] = []
        for d in dirs:
            if wanted(d):
                oid = hashlib.sha1(f"tree\0{commit.sha}\0{d}".encode()).hexdigest()
                entries.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        for f in commit.files.values():
            if wanted(f.path):
                e: dict[str, Any] = {
                    "type": "file",
                    "oid": f.blob_id,
                    "size": f.size,
                    "path": f.path,
                }
                if f.is_lfs:
                    e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
                entries.append(e)
        entries.sort(key=lambda e: e["path"])
        cursor = int((query.get("cursor") or ["0"])[0])
        page = entries[cursor : cursor + self.page_size]
        headers = {}
        if cursor + self.page_size < len(entries):
            next_query = {k: v for k, v in query.items() if k != "cursor"}
            next_query["cursor"] = [str(cursor + self.page_size)]
            split = urlsplit(h.path)
            headers["Link"] = (
                f'<{self._base_url(h)}{split.path}?{urlencode(next_query, doseq=True)}>; rel="next"'
            )
        self._send_json(h, method, page, headers=headers)

    # ---- /resolve --------------------------------------------------------------------------------

    def _resolve(
        self, h: _Handler, method: str, repo_id: str, revision: str, path: str, token: str | None
    ) -> None:
        repo = self._get_repo(repo_id, token)
        if repo.gated and not self._may_access(repo, token):
            if token is None:
                msg = (
                    f"Access to model {repo_id} is restricted. You must have access to it and be authenticated "
                    "to access it. Please log in."
                )
                raise _HubError(401, msg, "GatedRepo")
            msg = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self._base_url(h)}/{repo_id} to ask for access."
            )
            raise _HubError(403, msg, "GatedRepo")
        commit = self._get_commit(repo, revision)
        f = commit.files.get(path)
        if f is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})

        start, end, status = 0, f.size, 200
        range_header = h.headers.get("Range")
        if method == "GET" and range_header:
            parsed = _parse_range(range_header, f.size)
            if parsed == "unsatisfiable":
                raise _HubError(
                    416,
                    "Requested Range Not Satisfiable",
                    headers={"Content-Range": f"bytes */{f.size}", "X-Repo-Commit": commit.sha},
                )
            if parsed is not None:
                start, end = parsed
                status = 206
        headers = {
            "Content-Type": _content_type(path),
            "Content-Length": str(end - start),
            "Accept-Ranges": "bytes",
            "ETag": f'"{f.etag}"',
            "X-Repo-Commit": commit.sha,
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}; "
            f'filename="{path.rsplit("/", 1)[-1]}";',
            "Cache-Control": "public, max-age=31536000, immutable"
            if f.is_lfs
            else "private, max-age=0",
        }
        if f.is_lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method == "HEAD":
            return
        length = end - start
        drop = self._take(
            "drop", lambda x: _file_matches(x.pattern, repo_id, path) and x.nbytes < length
        )
        stall = self._take(
            "stall", lambda x: _file_matches(x.pattern, repo_id, path) and x.nbytes < length
        )
        corrupt = self._take("corrupt", lambda x: _file_matches(x.pattern, repo_id, path))
        self._send_body(h, repo_id, f, start, end, drop, stall, corrupt is not None)

    def _send_body(
        self,
        h: _Handler,
        repo_id: str,
        f: HubFile,
        start: int,
        end: int,
        drop: _Fault | None,
        stall: _Fault | None,
        corrupt: bool,
    ) -> None:
        sent, length = 0, end - start
        stalled = False
        with self._lock:
            self._bodies_in_flight += 1
        try:
            while sent < length:
                if stall is not None and not stalled and sent == stall.nbytes:
                    stalled = True
                    self._stop_event.wait(stall.seconds)
                if self._stop_event.is_set():
                    return self._abort(h, False)
                if drop is not None and sent == drop.nbytes:
                    return self._abort(h, drop.reset)
                rate = self._throttle
                n = min(_SEND_CHUNK, length - sent)
                if rate:
                    n = max(1, min(n, int(rate / 20)))
                for fault in (stall if not stalled else None, drop):
                    if fault is not None and sent < fault.nbytes < sent + n:
                        n = fault.nbytes - sent
                data = f.read(start + sent, start + sent + n)
                if corrupt:
                    data = data.translate(_INVERT)
                h.wfile.write(data)
                sent += n
                with self._lock:
                    key = (repo_id, f.path)
                    self._served[key] = self._served.get(key, 0) + n
                if rate:
                    self._stop_event.wait(n / rate)
        except (ConnectionError, TimeoutError, OSError):
            h.close_connection = True
        finally:
            with self._lock:
                self._bodies_in_flight -= 1

    @staticmethod
    def _abort(h: _Handler, reset: bool) -> None:
        h.close_connection = True
        conn = h.connection
        with contextlib.suppress(OSError):
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                h.rfile.close()
                conn.close()  # RST: the peer sees "connection reset"
            else:
                conn.shutdown(
                    socket.SHUT_RDWR
                )  # FIN: the peer sees a body shorter than Content-Length

    # ---- responses -------------------------------------------------------------------------------

    @staticmethod
    def _base_url(h: _Handler) -> str:
        return f"http://{h.headers.get('Host') or f'{HOST}:{h.server.server_port}'}"

    @staticmethod
    def _send_json(
        h: _Handler, method: str, body: Any, *, status: int = 200, headers: Mapping[str, str] = ()
    ) -> None:
        payload = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(payload)))
        for k, v in dict(headers).items():
            h.send_header(k, v)
        h.end_headers()
        if method != "HEAD":
            h.wfile.write(payload)

    def _send_error(self, h: _Handler, method: str, e: _HubError) -> None:
        headers = dict(e.headers)
        if e.code:
            headers["X-Error-Code"] = e.code
        headers["X-Error-Message"] = e.message
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            self._send_json(h, method, {"error": e.message}, status=e.status, headers=headers)


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[0].lower() in ("1", "true", "yes", "on", "")


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end_exclusive), "unsatisfiable", or None to ignore the header (multi-range / malformed)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header, re.IGNORECASE)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.groups()
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


def _content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json; charset=utf-8"
    if path.endswith((".md", ".txt", ".jinja", ".py", ".yaml", ".yml")) or path == ".gitattributes":
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


# --------------------------------------------------------------------------------------------------
# Client configuration
# --------------------------------------------------------------------------------------------------


def client_env(endpoint: str, hf_home: str | os.PathLike, **extra: str) -> dict[str, str]:
    """Environment variables for a (sub)process using the real huggingface_hub client against ``endpoint``."""
    hf_home = os.fspath(hf_home)
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": hf_home,
        "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
        "HF_XET_CACHE": os.path.join(hf_home, "xet"),
        "HF_TOKEN_PATH": os.path.join(hf_home, "token"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    env.update(extra)
    return env


_UNSET_FOR_CLIENT = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HUGGINGFACE_CO_STAGING",
                     "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_OFFLINE", "HF_HUB_ETAG_TIMEOUT",
                     "HF_HUB_DOWNLOAD_TIMEOUT")  # fmt: skip


def configure_hf_client(
    monkeypatch,
    endpoint: str,
    cache_dir: str | os.PathLike,
    *,
    token: str | None = None,
    download_timeout: float | None = None,
    etag_timeout: float | None = None,
    download_chunk_size: int | None = None,
) -> dict[str, str]:
    """Point the real huggingface_hub client at ``endpoint``, even if it was imported before this test.

    ``cache_dir`` is used as HF_HOME; the hub cache is ``<cache_dir>/hub``. ``token`` sets HF_TOKEN (read by the
    client at request time). ``download_timeout`` / ``etag_timeout`` shorten the client's read timeouts for GET /
    HEAD; ``download_chunk_size`` lowers the 10 MiB granularity at which an interrupted GET can be resumed. Every
    change goes through ``monkeypatch`` and is undone after the test. Returns the env vars that were set.
    """
    import huggingface_hub
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub import constants
    from huggingface_hub.utils import _cache_manager, _http

    env = client_env(endpoint, cache_dir)
    for name in _UNSET_FOR_CLIENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if token is not None:
        monkeypatch.setenv("HF_TOKEN", token)
    if download_timeout is not None:
        monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", str(download_timeout))
    if etag_timeout is not None:
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", str(etag_timeout))

    hf_home = env["HF_HOME"]
    hub_cache = env["HF_HUB_CACHE"]
    patches = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": hf_home,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": os.path.join(hf_home, "assets"),
        "HUGGINGFACE_ASSETS_CACHE": os.path.join(hf_home, "assets"),
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": os.path.join(hf_home, "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HUB_ETAG_TIMEOUT": etag_timeout
        if etag_timeout is not None
        else constants.DEFAULT_ETAG_TIMEOUT,
        "HF_HUB_DOWNLOAD_TIMEOUT": (
            download_timeout if download_timeout is not None else constants.DEFAULT_DOWNLOAD_TIMEOUT
        ),
    }
    if download_chunk_size is not None:
        patches["DOWNLOAD_CHUNK_SIZE"] = download_chunk_size
    for name, value in patches.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    if hasattr(constants, "HF_URL_HOSTS"):
        monkeypatch.setattr(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {HOST}))
    if hasattr(_http, "_HUB_ORIGINS") and hasattr(_http, "_url_origin"):
        monkeypatch.setattr(
            _http, "_HUB_ORIGINS", frozenset(_http._HUB_ORIGINS | {_http._url_origin(endpoint)})
        )
    if hasattr(_cache_manager, "HF_HUB_CACHE"):
        monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", hub_cache)
    # The module-level HfApi() behind huggingface_hub.model_info/list_models/... froze ENDPOINT when created.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    assert huggingface_hub.constants is constants
    # Drop pooled keep-alive connections to servers of earlier tests (a new server may reuse their port).
    huggingface_hub.close_session()
    return env


@contextlib.contextmanager
def running_hub(**kwargs: Any) -> Iterator[HubServer]:
    """``with running_hub() as hub:`` - a started HubServer that is stopped (threads joined) on exit."""
    server = HubServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------------
# Standalone
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve local folders as a Hugging Face Hub look-alike on 127.0.0.1."
    )
    parser.add_argument("repos", nargs="*", metavar="ORG/NAME=FOLDER", help="repos to publish")
    parser.add_argument(
        "--token", action="append", default=[], help="accepted bearer token (repeatable)"
    )
    parser.add_argument(
        "--gated", action="append", default=[], metavar="ORG/NAME", help="make a repo gated"
    )
    parser.add_argument(
        "--throttle", type=float, default=None, help="bytes per second for file bodies"
    )
    args = parser.parse_args(argv)
    server = HubServer(tokens=args.token)
    for spec in args.repos:
        repo_id, _, folder = spec.partition("=")
        server.add_repo(repo_id, folder, gated=repo_id in args.gated)
    server.throttle(args.throttle)

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background (SIGINT ignored)
    with server:
        print(f"Serving {len(args.repos)} repo(s) at {server.endpoint}")
        for k, v in client_env(server.endpoint, os.path.abspath("hf-home")).items():
            print(f"export {k}={v}")
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
