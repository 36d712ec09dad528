"""The packaging files, checked without building anything (packaging/smoke_test.py tests a build).

A few seconds in all: the spec's settings as data, the icon, the entitlements, the scripts' behaviour
without credentials or a Mac, fix_metallib on a fake bundle, and the MLX start-up check.
"""

from __future__ import annotations

import ast
import os
import plistlib
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))

import fix_metallib  # noqa: E402
import spec_config  # noqa: E402

from app import selfcheck  # noqa: E402


def _project_version() -> str:
    import re

    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)


def test_spec_is_python_and_uses_the_shared_settings():
    tree = ast.parse((PACKAGING / "hearth.spec").read_text(encoding="utf-8"))
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE", "collect_all"} <= calls
    text = (PACKAGING / "hearth.spec").read_text(encoding="utf-8")
    for needle in ('for package in ("mlx", "mlx_lm")', "info_plist=cfg.info_plist(VERSION)",
                   "bundle_identifier=cfg.BUNDLE_IDENTIFIER", "fix_metallib", "hearth_main.py"):
        assert needle in text
    assert (PACKAGING / "hearth_main.py").is_file()


def test_info_plist_and_version():
    assert spec_config.version() == _project_version()
    plist = spec_config.info_plist()
    assert plist["LSMinimumSystemVersion"] == "14.0"
    assert plist["NSHighResolutionCapable"] is True
    assert plist["NSRequiresAquaSystemAppearance"] is False
    assert plist["CFBundleDisplayName"] == "Hearth"
    assert plist["CFBundleShortVersionString"] == _project_version()
    assert spec_config.BUNDLE_IDENTIFIER.count(".") >= 2
    assert tuple(int(x) for x in spec_config.MIN_MACOS.split(".")) == selfcheck.MIN_MACOS
    plistlib.dumps(plist)  # every value is plist-serialisable


def test_bundled_resources_exist_and_icon_is_1024_square():
    for name in spec_config.RESOURCES:
        assert (ROOT / "resources" / name).is_file(), name
    header = spec_config.ICON_PNG.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert struct.unpack(">II", header[16:24]) == (1024, 1024)


def test_icon_drawing_is_transparent_outside_the_body(qapp):
    from make_icon import draw

    image = draw()
    assert (image.width(), image.height()) == (1024, 1024)
    assert image.pixelColor(5, 5).alpha() == 0  # outside the rounded body
    assert image.pixelColor(512, 560).alpha() == 255  # the flame


def test_transformers_filter_keeps_tokenizers_and_skips_models():
    wanted = spec_config.transformers_module_wanted
    assert wanted("transformers.models.llama.tokenization_llama")
    assert wanted("transformers.models.auto.tokenization_auto")
    assert wanted("transformers.tokenization_utils_tokenizers")
    assert not wanted("transformers.models.llama.modeling_llama")
    assert not wanted("transformers.trainer")
    assert spec_config.UNWANTED_BINARIES.match("libcudart.so.12")
    assert not spec_config.UNWANTED_BINARIES.match("libmlx.so")


def test_entitlements():
    data = plistlib.loads((PACKAGING / "entitlements.plist").read_bytes())
    assert data == {"com.apple.security.cs.allow-unsigned-executable-memory": True,
                    "com.apple.security.cs.disable-library-validation": True}


def _env_without_credentials() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("APPLE_")}


def test_sign_script_skips_cleanly_without_credentials():
    done = subprocess.run(["bash", str(PACKAGING / "sign_and_notarize.sh"), "/nonexistent"],
                          capture_output=True, text=True, env=_env_without_credentials(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("skipping signing and notarization: set APPLE_SIGNING_IDENTITY")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message on systems without hdiutil")
def test_dmg_script_says_it_needs_macos():
    done = subprocess.run(["bash", str(PACKAGING / "make_dmg.sh"), "/nonexistent.app"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "run this on a Mac" in done.stderr


def _fake_bundle(tmp_path: Path, with_metallib: bool = True) -> Path:
    app = tmp_path / "Hearth.app"
    lib_dir = app / "Contents" / "Frameworks" / "mlx" / "lib"
    lib_dir.mkdir(parents=True)
    (lib_dir / "libmlx.dylib").write_bytes(b"\xcf\xfa\xed\xfe")
    (app / "Contents" / "Frameworks" / "libmlx.dylib").symlink_to("mlx/lib/libmlx.dylib")
    if with_metallib:
        resources = app / "Contents" / "Resources" / "mlx" / "lib"
        resources.mkdir(parents=True)
        (resources / "mlx.metallib").write_bytes(b"MTLB")
    return app


def test_fix_metallib_links_the_metallib_beside_every_libmlx(tmp_path):
    app = _fake_bundle(tmp_path)
    assert fix_metallib.ensure_metallib(app, log=lambda *_: None) == 0
    real = app / "Contents" / "Resources" / "mlx" / "lib" / "mlx.metallib"
    for folder in (app / "Contents" / "Frameworks", app / "Contents" / "Frameworks" / "mlx" / "lib"):
        beside = folder / "mlx.metallib"
        assert beside.is_symlink() and not os.path.isabs(os.readlink(beside))
        assert beside.resolve() == real.resolve()
    assert fix_metallib.ensure_metallib(app, log=lambda *_: None) == 0  # idempotent


def test_fix_metallib_fails_on_a_mac_bundle_without_any_metallib(tmp_path, monkeypatch):
    app = _fake_bundle(tmp_path, with_metallib=False)
    monkeypatch.setattr(fix_metallib.sys, "platform", "darwin")
    monkeypatch.setattr(fix_metallib, "_installed_metallib", lambda: None)
    lines = []
    assert fix_metallib.ensure_metallib(app, log=lines.append) == 1
    assert "no mlx.metallib" in lines[-1]


def test_selfcheck_passes_here_and_explains_a_failure(monkeypatch):
    assert selfcheck.check_mlx() is None
    monkeypatch.setitem(sys.modules, "mlx", None)
    monkeypatch.setitem(sys.modules, "mlx.core", None)
    message = selfcheck.check_mlx()
    assert message.startswith("Hearth cannot run models: MLX")
    assert "importing MLX (mlx.core) failed: ModuleNotFoundError" in message
    assert "cannot load or chat with any model" in message and "reinstall" in message
    assert "\n" not in message


def test_selfcheck_message_for_a_mac(monkeypatch):
    monkeypatch.setattr(selfcheck.sys, "platform", "darwin")
    monkeypatch.setattr(selfcheck.platform, "mac_ver", lambda: ("13.6.1", ("", "", ""), "arm64"))
    monkeypatch.setattr(selfcheck.sys, "frozen", True, raising=False)
    message = selfcheck._message("running one small operation on Device(gpu, 0) failed: RuntimeError: x")
    assert "macOS 14 (Sonoma) or later" in message and "this one runs macOS 13.6.1" in message
    assert "mlx.metallib" in message and "download it again" in message


def test_entry_script_selfcheck_and_isolated_check():
    done = subprocess.run([sys.executable, str(PACKAGING / "hearth_main.py"), "--selfcheck"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MLX OK: Device(")
    assert selfcheck.check_mlx_isolated() is None
