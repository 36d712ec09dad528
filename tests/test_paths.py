"""Per-user folders: all under HEARTH_HOME when it is set, platformdirs' choices otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import platformdirs
import pytest

from engine import paths

KINDS = {
    "data": (paths.data_dir, platformdirs.user_data_path),
    "config": (paths.config_dir, platformdirs.user_config_path),
    "cache": (paths.cache_dir, platformdirs.user_cache_path),
    "logs": (paths.logs_dir, platformdirs.user_log_path),
}


@pytest.fixture
def fake_user(tmp_path, monkeypatch):
    """A private HOME (and XDG folders on Linux), so platformdirs' answers never touch the real ones."""
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    return home


def test_hearth_home_holds_every_folder_and_they_are_created(hearth_home, fake_user):
    assert not hearth_home.exists()
    found = {kind: getter() for kind, (getter, _) in KINDS.items()}
    for kind, path in found.items():
        assert path == hearth_home / kind
        assert path.is_dir()
    assert len(set(found.values())) == len(KINDS)
    assert list(fake_user.rglob("*")) == []  # nothing where platformdirs would have put it


def test_hearth_home_is_read_at_each_call(tmp_path, monkeypatch, fake_user):
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path / "first"))
    assert paths.data_dir() == tmp_path / "first" / "data"
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path / "second"))
    assert paths.data_dir() == tmp_path / "second" / "data"


def test_hearth_home_expands_the_user_folder(monkeypatch, fake_user):
    monkeypatch.setenv("HEARTH_HOME", "~/hearth-here")
    assert paths.config_dir() == fake_user / "hearth-here" / "config"
    assert paths.config_dir().is_dir()


@pytest.mark.parametrize("value", [None, "", "   "])
def test_without_hearth_home_platformdirs_decides(monkeypatch, fake_user, value):
    if value is None:
        monkeypatch.delenv("HEARTH_HOME", raising=False)
    else:
        monkeypatch.setenv("HEARTH_HOME", value)
    for kind, (getter, platform_getter) in KINDS.items():
        expected = platform_getter("Hearth", appauthor=False)
        assert expected.is_relative_to(fake_user), expected  # the fixture took effect
        assert getter() == expected, kind
        assert expected.is_dir()
    assert len({getter() for getter, _ in KINDS.values()}) == len(KINDS)


def test_a_hearth_home_on_a_read_only_disk_is_one_line_for_every_command(tmp_path, monkeypatch):
    """`hearth models` (and any command that needs the data folder) on a read-only HEARTH_HOME: one
    line naming the folder, exit 1, never an internal error."""
    from test_history_faults import _mounted

    read_only = tmp_path / "read-only"
    read_only.mkdir()
    with _mounted(read_only, "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs"):
        env = dict(os.environ, HEARTH_HOME=str(read_only / "home"))
        for command in (["models"], ["default"], ["history", "list"]):
            done = subprocess.run([sys.executable, "-m", "app.cli", *command], capture_output=True, text=True,
                                  env=env, timeout=120)
            assert done.returncode == 1, (command, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("hearth: error: Hearth cannot create its"), lines
            assert str(read_only / "home") in lines[0] and "internal error" not in lines[0]
