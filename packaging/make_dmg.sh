#!/usr/bin/env bash
# Make a compressed disk image of Hearth.app with a link to /Applications beside it (drag to install).
#
#   bash packaging/make_dmg.sh dist/Hearth.app [dist/Hearth-VERSION.dmg]
#
# Sign and notarize the app first (packaging/sign_and_notarize.sh), then, if you sign, the .dmg
# too: `bash packaging/sign_and_notarize.sh dist/Hearth-VERSION.dmg`.
set -euo pipefail

if [[ "$(uname -s)" != "Darwin" ]]; then
    echo "make_dmg: a .dmg is made with macOS's hdiutil; run this on a Mac (this is $(uname -s))." >&2
    exit 1
fi
app=${1:-}
if [[ -z "$app" || ! -d "$app" || "$app" != *.app ]]; then
    echo "make_dmg: usage: $0 PATH/Hearth.app [OUTPUT.dmg] (got '${app}')" >&2
    exit 1
fi
version=$(/usr/libexec/PlistBuddy -c "Print :CFBundleShortVersionString" "$app/Contents/Info.plist")
name=$(basename "$app" .app)
out=${2:-"$(dirname "$app")/$name-$version.dmg"}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# ditto keeps the links, extended attributes and signatures inside the bundle.
ditto "$app" "$stage/$name.app"
ln -s /Applications "$stage/Applications"
rm -f "$out"
hdiutil create -volname "$name $version" -srcfolder "$stage" -fs HFS+ -format UDZO \
    -imagekey zlib-level=9 -ov "$out"
hdiutil verify "$out"
echo "wrote $out ($(du -h "$out" | cut -f1))"
