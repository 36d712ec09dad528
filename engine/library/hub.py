"""Talking to the Hugging Face Hub, only when the user asks: settings read at call time, errors
turned into specific messages. TLS verification is huggingface_hub's default and never changed."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from ..errors import HearthError
from ..model_folder import hf_home

DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(HearthError):
    """A failure talking to the Hub, said plainly."""


class GatedRepo(HubError):
    pass


class RepoNotFound(HubError):
    pass


class Offline(HubError):
    pass


class DiskFull(HubError):
    pass


class ChecksumMismatch(HubError):
    pass


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token_path() -> Path:
    return Path(os.environ.get("HF_TOKEN_PATH") or hf_home() / "token")


def get_token() -> str | None:
    """The token huggingface_hub would use: HF_TOKEN, else the token file in the HF home."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return token
    try:
        return token_path().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def save_token(token: str) -> str:
    """Check a token with the Hub, then store it where huggingface_hub keeps it; the user name."""
    token = token.strip()
    if not token:
        raise HubError("The token is empty.")
    user = call(lambda api: api.whoami(token=token), what="checking the token")
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token)
    return str(user.get("name", "?")) if isinstance(user, dict) else "?"


def api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=get_token() or False)


def call(fn, *, what: str, repo_id: str | None = None) -> Any:
    """Run fn(HfApi) and translate every failure into a HubError that says what to do."""
    try:
        return fn(api())
    except HearthError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below; unknown ones keep their text
        raise translate(exc, what=what, repo_id=repo_id) from exc


def translate(exc: BaseException, *, what: str, repo_id: str | None = None) -> HearthError:
    from huggingface_hub import errors as hf_errors

    name = repo_id or "the repository"
    if isinstance(exc, hf_errors.GatedRepoError):
        return GatedRepo(
            f"{name} is gated: accept its license on {endpoint()}/{repo_id or ''} with your account, "
            f"then give Hearth a Hugging Face token (hearth token). ({_status(exc)})")
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        if _status(exc) == 401 and get_token() is None:
            return RepoNotFound(f"{name} was not found, or it is private and needs a token (401).")
        return RepoNotFound(f"{name} does not exist on the Hub ({_status(exc) or 404}).")
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return RepoNotFound(f"{name} has no such revision (404).")
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return RepoNotFound(f"A file of {name} is missing on the Hub (404): {exc}")
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return Offline(f"Cannot {what}: offline mode is on (HF_HUB_OFFLINE is set).")
    if isinstance(exc, hf_errors.HfHubHTTPError):
        status = _status(exc)
        if status == 401:
            return HubError(f"The Hub refused the token while {what} (401): check it with `hearth token`.")
        return HubError(f"The Hub answered {status} while {what}; try again later.")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(f"The disk is full while {what}: free some space, then resume.")
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "is on a read-only disk" if exc.errno == errno.EROFS else "may not be written (permission denied)"
        return HubError(f"Cannot save while {what}: {exc.filename or 'the Hugging Face cache'} {why}. "
                        f"Make it writable, or set HF_HOME to a folder that is.")
    if _is_connection_error(exc):
        return Offline(f"Cannot reach {endpoint()} while {what}: check the connection, then resume.")
    return HubError(f"Failed while {what}: {exc}")


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_connection_error(exc: BaseException) -> bool:
    import httpx2

    return isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError))


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: dropped or refused connections, timeouts, and 5xx/429 answers."""
    from huggingface_hub import errors as hf_errors

    if _is_connection_error(exc):
        return True
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return True  # the body ended early
    if isinstance(exc, hf_errors.HfHubHTTPError) and not isinstance(
            exc, (hf_errors.RepositoryNotFoundError, hf_errors.GatedRepoError, hf_errors.EntryNotFoundError,
                  hf_errors.RevisionNotFoundError)):
        status = _status(exc)
        return status is None or status >= 500 or status == 429
    return False
