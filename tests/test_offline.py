"""The offline guarantee: nothing opens a network connection unless the user asks for a catalog
refresh, a search or a download; and TLS verification is never turned off.

Connections are caught at the socket layer (socket.socket.connect / connect_ex,
socket.create_connection, socket.getaddrinfo), below every HTTP client, in this process and in a
child running the real `hearth` command. Unix sockets are local and allowed. HF_HUB_OFFLINE is
lifted for these tests, so huggingface_hub would go online if anything asked it to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.library import hub_cache

ROOT = Path(__file__).resolve().parents[1]
REPO = "mlx-community/tiny-llama-4bit"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HELLO = [{"role": "user", "content": "Hello there"}]


def cache_repo(repo_id: str, folder: Path, commit: str = COMMIT) -> Path:
    """The repo in the HF cache as huggingface_hub lays it out (blobs, snapshot symlinks, refs/main)."""
    repo = hub_cache.repo_folder(repo_id)
    for path in folder.iterdir():
        data = path.read_bytes()
        lfs = path.suffix in (".safetensors", ".model")
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(
            b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo


class NetworkLog:
    """Records (and refuses) every attempt to open a non-Unix connection or resolve a host name."""

    def __init__(self, monkeypatch) -> None:
        self.attempts: list[tuple[str, str]] = []
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        log = self

        def connect(sock, address):
            if sock.family == socket.AF_UNIX:
                return real_connect(sock, address)
            log.attempts.append(("connect", repr(address)))
            raise OSError("network blocked by the offline test")

        def connect_ex(sock, address):
            if sock.family == socket.AF_UNIX:
                return real_connect_ex(sock, address)
            log.attempts.append(("connect_ex", repr(address)))
            return 111  # ECONNREFUSED

        def create_connection(address, *args, **kwargs):
            log.attempts.append(("create_connection", repr(address)))
            raise OSError("network blocked by the offline test")

        def getaddrinfo(host, *args, **kwargs):
            log.attempts.append(("getaddrinfo", repr(host)))
            raise socket.gaierror("name resolution blocked by the offline test")

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def online_allowed(monkeypatch):
    """Lift HF_HUB_OFFLINE (set by conftest), in the environment and in huggingface_hub's constants."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def cached(tiny) -> Path:
    return cache_repo(REPO, tiny["spm_legacy"])


# ------------------------------------------------------------------------------ in-process


def test_listing_loading_chatting_and_history_make_no_connection(cached, online_allowed, monkeypatch,
                                                                  tmp_path, capsys):
    net = NetworkLog(monkeypatch)
    from app.cli import main
    from engine.engine import Engine
    from engine.generation import GenerationRequest
    from engine.history import HistoryStore
    from engine.library import catalog, library
    from engine.model_folder import resolve_model
    from engine.sampling import SamplingSettings

    (model,) = library.installed_models()
    assert model.ref == REPO and model.usable
    assert main(["models"]) == 0
    assert REPO in capsys.readouterr().out
    assert catalog.load()
    assert main(["catalog"]) == 0
    assert "license:" in capsys.readouterr().out
    info = resolve_model(REPO)
    assert info.repo_id == REPO and info.revision == COMMIT
    library.mark_used(REPO)
    library.set_default(REPO)

    engine = Engine().start()
    try:
        loaded = engine.load(REPO).wait()
        assert loaded.finish_reason == "done", loaded.error
        answer = engine.generate(GenerationRequest(HELLO, SamplingSettings(temperature=0, max_tokens=4))).wait()
        assert answer.finish_reason in ("stop", "length") and answer.generation_tokens > 0, answer.error
    finally:
        engine.shutdown()

    with HistoryStore() as store:
        conversation = store.create_conversation(title="Offline")
        question = store.add_user_message(conversation.id, "Hello there")
        store.add_answer(conversation.id, question.id, answer.text or "(empty)")
        assert [m.role for m in store.active_path(conversation.id)] == ["user", "assistant"]
        assert store.search("Hello")

    messages = tmp_path / "hello.json"
    messages.write_text(json.dumps(HELLO))
    assert main(["prompt", REPO, "--messages", str(messages), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["token_ids"]
    assert main(["generate", REPO, "--messages", str(messages), "--max-tokens", "3", "--temp", "0",
                 "--save"]) == 0
    assert main(["history", "list"]) == 0
    assert net.attempts == []


def test_the_detector_sees_what_a_download_would_open(online_allowed, monkeypatch):
    """The same detector, when the user does ask to go online: the attempt is seen (and refused),
    and the download says plainly that the Hub cannot be reached."""
    net = NetworkLog(monkeypatch)
    from engine.library.downloads import DownloadJob

    done = DownloadJob(REPO).run()
    assert done.status == "failed" and done.error_kind == "Offline"
    assert done.error.startswith("Cannot reach https://huggingface.co while looking up")
    assert net.attempts and net.attempts[0] in (("getaddrinfo", "'huggingface.co'"),
                                                ("create_connection", "('huggingface.co', 443)"))


# ------------------------------------------------------------------- the real command


CHILD = textwrap.dedent("""
    import json, runpy, socket, sys

    LOG = sys.argv[1]
    REPO, MESSAGES = sys.argv[2], sys.argv[3]

    def record(kind, what):
        with open(LOG, "a") as log:
            log.write(json.dumps([kind, repr(what)]) + "\\n")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock, address):
        if sock.family == socket.AF_UNIX:
            return real_connect(sock, address)
        record("connect", address)
        raise OSError("network blocked by the offline test")

    def connect_ex(sock, address):
        if sock.family == socket.AF_UNIX:
            return real_connect_ex(sock, address)
        record("connect_ex", address)
        return 111

    def create_connection(address, *args, **kwargs):
        record("create_connection", address)
        raise OSError("network blocked by the offline test")

    def getaddrinfo(host, *args, **kwargs):
        record("getaddrinfo", host)
        raise socket.gaierror("name resolution blocked by the offline test")

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo

    # `hearth chat REPO` exactly as the command runs it, reading the conversation from stdin.
    sys.argv = ["hearth", "chat", REPO, "--max-tokens", "4", "--temp", "0"]
    try:
        runpy.run_module("app.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        assert exit.code in (0, None), exit.code
    from app.cli import main
    for argv in (["models"], ["catalog"], ["prompt", REPO, "--messages", MESSAGES],
                 ["generate", REPO, "--messages", MESSAGES, "--max-tokens", "3"], ["history", "list"],
                 ["default", REPO], ["run", "--max-tokens", "2"]):
        sys.stdin = open("/dev/null")
        assert main(argv) == 0, argv
    print("ALL DONE", file=sys.stderr)
""")


def test_the_hearth_command_makes_no_connection(cached, tmp_path):
    log = tmp_path / "attempts.jsonl"
    messages = tmp_path / "hello.json"
    messages.write_text(json.dumps(HELLO))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "TRANSFORMERS_"))}
    env.update(HEARTH_HOME=os.environ["HEARTH_HOME"], HF_HOME=os.environ["HF_HOME"], HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(log), REPO, str(messages)], cwd=ROOT,
                          input="Hello there\nAnd again?\n/bye\n", capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ALL DONE" in proc.stderr and "Traceback" not in proc.stderr
    assert REPO in proc.stdout  # `hearth models` listed it
    attempts = log.read_text().splitlines() if log.exists() else []
    assert attempts == []
    from engine.history import HistoryStore

    with HistoryStore() as store:  # the chat was answered and recorded: two questions, two answers
        counts = [store.message_count(c.id) for c in store.list_conversations()]
    assert 4 in counts


# ---------------------------------------------------------------------- TLS verification


INSECURE = [
    re.compile(r"\bverify\s*=\s*False\b"),
    re.compile(r"\bCERT_NONE\b"),
    re.compile(r"check_hostname\s*=\s*False"),
    re.compile(r"_create_unverified_context"),
    re.compile(r"_create_default_https_context"),
    re.compile(r"PYTHONHTTPSVERIFY"),
    re.compile(r"\b(CURL|REQUESTS|SSL)_CA_BUNDLE\b|\bSSL_CERT_(FILE|DIR)\b"),
    re.compile(r"disable_warnings\s*\(|InsecureRequestWarning"),
]


def insecure_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in INSECURE)]


def test_the_scan_finds_each_way_of_turning_tls_verification_off():
    samples = ["httpx.Client(verify=False)", "ctx.verify_mode = ssl.CERT_NONE", "ctx.check_hostname = False",
               "ssl._create_unverified_context()", "ssl._create_default_https_context = x",
               "os.environ['PYTHONHTTPSVERIFY'] = '0'", "os.environ['CURL_CA_BUNDLE'] = ''",
               "urllib3.disable_warnings()", "requests.get(url, verify = False)"]
    for sample in samples:
        assert insecure_lines(sample) == [sample], sample
    assert insecure_lines("verify=True\nverify_checksum = False\nhub.verify(x)") == []


def test_nothing_in_the_app_or_engine_turns_tls_verification_off():
    sources = sorted([*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("app").rglob("*.py")])
    assert len(sources) > 20
    found = {str(p.relative_to(ROOT)): lines for p in sources if (lines := insecure_lines(p.read_text("utf-8")))}
    assert found == {}


def test_huggingface_hubs_client_verifies_certificates(online_allowed):
    import ssl

    from huggingface_hub.utils import get_session

    from engine.library import hub

    hub.api()  # what Hearth builds for every Hub call
    pool = getattr(getattr(get_session(), "_transport", None), "_pool", None)
    context = getattr(pool, "_ssl_context", None)
    if context is None:
        pytest.skip("this httpx2 version keeps its SSL context elsewhere")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
