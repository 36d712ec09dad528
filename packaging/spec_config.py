"""The settings packaging/hearth.spec builds with, as plain data (no PyInstaller import), so that
tests/test_packaging.py can check them without building anything.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

APP_NAME = "Hearth"
BUNDLE_IDENTIFIER = "org.hearth.Hearth"
# mlx's macOS wheels are arm64-only and built for macOS 14 (macosx_14_0_arm64); mlx-metal's too.
# Build with those wheels (not ones tagged for a newer macOS: their mlx.metallib can fail on older
# systems), and keep this in step with them and with app/selfcheck.MIN_MACOS.
MIN_MACOS = "14.0"
ICNS = ROOT / "build" / "Hearth.icns"  # from packaging/make_icns.sh (macOS only)
ICON_PNG = ROOT / "resources" / "icon.png"

# Files from resources/ the app reads at run time, kept at resources/ inside the bundle: the code
# finds them relative to its own package (engine/library/catalog.py: parents[2] / "resources"),
# which in a frozen build is the bundle's top folder (sys._MEIPASS).
RESOURCES = ["catalog.json", "icon.png"]

# Never wanted in the bundle: optional back ends some dependency may import if present in the
# build environment, test tools, and Qt modules the app does not use (QtWebEngine alone is ~200 MB).
EXCLUDES = [
    "torch", "torchvision", "torchaudio", "tensorflow", "tf_keras", "keras", "jax", "jaxlib", "flax",
    "matplotlib", "tkinter", "_tkinter", "IPython", "jupyter", "notebook", "pandas", "scipy",
    "sklearn", "datasets", "accelerate", "lm_eval", "pytest", "_pytest", "pytestqt", "ruff",
    "PyInstaller", "setuptools", "pkg_resources", "fsspec.conftest", "transformers.testing_utils",
    "transformers.utils.pytest_helpers",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel", "PySide6.QtWebSockets", "PySide6.QtQuick3D", "PySide6.QtPdf",
    "PySide6.QtPdfWidgets",
    "PySide6.QtMultimedia", "PySide6.QtMultimediaWidgets", "PySide6.QtCharts",
    "PySide6.QtDataVisualization", "PySide6.Qt3DCore", "PySide6.QtDesigner", "PySide6.QtSql",
    "PySide6.QtTest", "PySide6.QtOpenGLWidgets",  # QtOpenGL stays: PySide6.QtQuick imports it
]

# transformers imports almost everything lazily (its _LazyModule), so PyInstaller sees little of
# it. The app needs AutoTokenizer / AutoConfig and every model family's tokenizer and configuration
# (Llama 2 and Mistral: LlamaTokenizer; Llama 3: the tokenizers back end), never a PyTorch model.
_TRANSFORMERS_SKIP = re.compile(
    r"^transformers\.(commands|trainer|training_args|pipelines|data|benchmark|onnx|sagemaker|kernels|"
    r"distributed|quantizers|loss|generation|cli|testing_utils|utils\.pytest_helpers)(\.|$)"
    r"|^transformers\.models\.[^.]+\.(modeling_|modular_|convert_|image_processing|video_processing|"
    r"feature_extraction|processing_|audio_)"
    r"|_tf_|_flax_|\.modeling_tf|\.modeling_flax"
)


# Shared libraries PyInstaller finds by scanning for ctypes.CDLL("...") calls and that the app never
# loads: transformers probes for CUDA's runtime (libcudart) to report a version.
UNWANTED_BINARIES = re.compile(r"^(libcudart|libcuda|libnvrtc|libcublas)[.-]")


def transformers_module_wanted(name: str) -> bool:
    return not _TRANSFORMERS_SKIP.search(name)


def version() -> str:
    """The project's version, from pyproject.toml (the source of truth at build time)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        if not match:
            raise RuntimeError("no version in pyproject.toml") from None
        return match.group(1)
    return tomllib.loads(text)["project"]["version"]


def info_plist(app_version: str | None = None) -> dict:
    """Info.plist keys beyond what PyInstaller's BUNDLE writes itself (it writes CFBundleIdentifier,
    CFBundleShortVersionString, CFBundleIconFile and NSHighResolutionCapable, not the rest)."""
    v = app_version or version()
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleShortVersionString": v,
        "CFBundleVersion": v,
        "LSMinimumSystemVersion": MIN_MACOS,
        "LSArchitecturePriority": ["arm64"],
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follow the system's light/dark appearance
        "LSApplicationCategoryType": "public.app-category.productivity",
        "NSHumanReadableCopyright": "MIT License",
    }
