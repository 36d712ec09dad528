#!/usr/bin/env bash
# Turn resources/icon.png (1024 x 1024, from packaging/make_icon.py) into Hearth.icns, on macOS.
#
#   bash packaging/make_icns.sh [OUTPUT.icns]        (default: build/Hearth.icns)
#
# Uses only what every Mac has: sips scales the PNG to the ten sizes an .iconset holds (16 to 512
# points, each at 1x and 2x), iconutil packs them. packaging/hearth.spec picks up build/Hearth.icns.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "$(uname -s)" != "Darwin" ]]; then
    echo "make_icns: needs macOS (sips and iconutil); on this system the spec builds without an .icns." >&2
    exit 1
fi

src=resources/icon.png
out=${1:-build/Hearth.icns}
[[ -f $src ]] || { echo "make_icns: $src is missing; run: python packaging/make_icon.py" >&2; exit 1; }

iconset=$(mktemp -d)/Hearth.iconset
mkdir -p "$iconset" "$(dirname "$out")"
for points in 16 32 128 256 512; do
    sips -z "$points" "$points" "$src" --out "$iconset/icon_${points}x${points}.png" >/dev/null
    double=$((points * 2))
    sips -z "$double" "$double" "$src" --out "$iconset/icon_${points}x${points}@2x.png" >/dev/null
done
iconutil --convert icns --output "$out" "$iconset"
rm -rf "$(dirname "$iconset")"
echo "wrote $out"
