#!/usr/bin/env bash
# Build a frozen Hearth and prove it starts and chats.
#
#   bash packaging/build.sh [DIST_DIR [WORK_DIR]]      (defaults: dist, build/pyinstaller)
#
# Needs the project installed with the "package" extra (PyInstaller): pip install -e '.[package]'.
# PYTHON picks the interpreter (default: python3, which must be the project's environment).
#
# Linux:  DIST_DIR/hearth/hearth, smoke-tested (this is what CI runs).
# macOS:  the icon (make_icns.sh), DIST_DIR/Hearth.app (the spec places mlx.metallib beside libmlx),
#         MLX checked inside the bundle (fix_metallib.py --verify), signed and notarized when the
#         credentials are set (sign_and_notarize.sh, else skipped), smoke-tested as signed, then
#         DIST_DIR/Hearth-VERSION.dmg (make_dmg.sh; signed and notarized the same way).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
dist=${1:-dist}
work=${2:-build/pyinstaller}
macos=false
[[ "$(uname -s)" == "Darwin" ]] && macos=true

if $macos; then
    if [[ "$(uname -m)" != "arm64" ]]; then
        echo "build: Hearth.app is arm64-only (MLX needs Apple Silicon); this Mac is $(uname -m)" >&2
        exit 1
    fi
    bash packaging/make_icns.sh build/Hearth.icns
fi

started=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$dist" --workpath "$work" \
    packaging/hearth.spec
echo "build: PyInstaller took $(( $(date +%s) - started )) s"

if $macos; then
    app="$dist/Hearth.app"
    "$PYTHON" packaging/fix_metallib.py "$app" --verify
    bash packaging/sign_and_notarize.sh "$app"
    "$PYTHON" packaging/smoke_test.py "$dist"
    version=$(/usr/libexec/PlistBuddy -c "Print :CFBundleShortVersionString" "$app/Contents/Info.plist")
    bash packaging/make_dmg.sh "$app" "$dist/Hearth-$version.dmg"
    bash packaging/sign_and_notarize.sh "$dist/Hearth-$version.dmg"
    du -sh "$app" "$dist/Hearth-$version.dmg"
else
    "$PYTHON" packaging/smoke_test.py "$dist"
    du -sh "$dist/hearth"
fi
