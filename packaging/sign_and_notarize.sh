#!/usr/bin/env bash
# Sign, notarize and staple Hearth.app (or a Hearth .dmg) when signing credentials are in the
# environment; otherwise say which are missing and skip (exit 0), so unsigned builds keep working.
#
#   bash packaging/sign_and_notarize.sh dist/Hearth.app
#   bash packaging/sign_and_notarize.sh dist/Hearth-0.1.0.dmg
#
# Signing:       APPLE_SIGNING_IDENTITY  e.g. "Developer ID Application: Jane Doe (TEAMID1234)"
#                (its certificate and key in the login keychain, or in KEYCHAIN_PATH if set)
# Notarization:  APPLE_NOTARY_PROFILE    a profile saved with `xcrun notarytool store-credentials`
#           or:  APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD (an app-specific password)
#
# An app is signed inside out: every Mach-O file in it (.dylib, .so, the Qt framework binaries, any
# helper executable), then each .framework, then the app itself with the hardened runtime and
# packaging/entitlements.plist. Then a zip of it goes to Apple's notary service (--wait), and the
# ticket is stapled to the app. A .dmg is signed as a whole, notarized and stapled the same way.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
target=${1:-}
entitlements="$here/entitlements.plist"

skip() { echo "skipping $1: $2"; }

if [[ -z "${APPLE_SIGNING_IDENTITY:-}" ]]; then
    skip "signing and notarization" \
        "set APPLE_SIGNING_IDENTITY (a Developer ID Application identity) to sign, and APPLE_NOTARY_PROFILE or APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD to notarize. ${target:-The build} is left unsigned."
    exit 0
fi
if [[ "$(uname -s)" != "Darwin" ]]; then
    echo "sign_and_notarize: APPLE_SIGNING_IDENTITY is set, but signing needs macOS (codesign, notarytool)" >&2
    exit 1
fi
if [[ -z "$target" || ! -e "$target" ]]; then
    echo "sign_and_notarize: usage: $0 PATH/Hearth.app|PATH/Hearth.dmg (got '${target}')" >&2
    exit 1
fi

keychain=()
[[ -n "${KEYCHAIN_PATH:-}" ]] && keychain=(--keychain "$KEYCHAIN_PATH")
sign() {  # sign [extra codesign options...] PATH
    # ${a[@]+"${a[@]}"}: an empty array under set -u in macOS's bash 3.2
    codesign --force --timestamp --options runtime ${keychain[@]+"${keychain[@]}"} \
        --sign "$APPLE_SIGNING_IDENTITY" "$@"
}

if [[ -d "$target" ]]; then
    echo "signing the code inside $target"
    count=0
    # Deepest first, so a file is signed before anything that contains it. Links are skipped: the
    # file they point to is signed where it lives.
    while IFS= read -r file; do
        if file -b "$file" | grep -q "Mach-O"; then
            sign "$file"
            count=$((count + 1))
        fi
    done < <(find "$target/Contents" -type f \( -path "*/Contents/Frameworks/*" -o -path "*/Contents/Resources/*" \
                 -o -path "*/Contents/MacOS/*" \) ! -path "*/Contents/MacOS/$(basename "$target" .app)" \
             | awk -F/ '{ print NF "\t" $0 }' | sort -rn | cut -f2-)
    echo "signed $count Mach-O files"
    while IFS= read -r framework; do  # its binary is signed already; this seals its resources
        sign "$framework" || echo "note: $framework is not a complete framework bundle; its binary is signed"
    done < <(find "$target/Contents" -type d -name "*.framework" | awk -F/ '{ print NF "\t" $0 }' | sort -rn | cut -f2-)
    echo "signing $target with the hardened runtime and $(basename "$entitlements")"
    sign --entitlements "$entitlements" "$target"
    codesign --verify --deep --strict --verbose=2 "$target"
else
    echo "signing $target"
    codesign --force --timestamp ${keychain[@]+"${keychain[@]}"} --sign "$APPLE_SIGNING_IDENTITY" "$target"
    codesign --verify --verbose=2 "$target"
fi

notary=()
if [[ -n "${APPLE_NOTARY_PROFILE:-}" ]]; then
    notary=(--keychain-profile "$APPLE_NOTARY_PROFILE")
    [[ -n "${KEYCHAIN_PATH:-}" ]] && notary+=(--keychain "$KEYCHAIN_PATH")
elif [[ -n "${APPLE_ID:-}" && -n "${APPLE_TEAM_ID:-}" && -n "${APPLE_APP_PASSWORD:-}" ]]; then
    notary=(--apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" --password "$APPLE_APP_PASSWORD")
else
    skip "notarization" "set APPLE_NOTARY_PROFILE, or APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD. $target is signed but not notarized (Gatekeeper will warn on other Macs)."
    exit 0
fi

upload="$target"
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
if [[ -d "$target" ]]; then
    upload="$workdir/$(basename "$target" .app).zip"
    ditto -c -k --sequesterRsrc --keepParent "$target" "$upload"
fi
echo "submitting $(basename "$upload") to Apple's notary service (this waits for the verdict)"
result="$workdir/notary.json"
xcrun notarytool submit "$upload" "${notary[@]}" --wait --output-format json | tee "$result"
echo
if ! grep -q '"status" *: *"Accepted"' "$result"; then
    id=$(sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p' "$result" | head -n 1)
    echo "sign_and_notarize: notarization was not accepted; Apple's log follows" >&2
    if [[ -n "$id" ]]; then
        xcrun notarytool log "$id" "${notary[@]}" >&2 || true
    fi
    exit 1
fi
xcrun stapler staple "$target"
xcrun stapler validate "$target"
if [[ -d "$target" ]]; then
    spctl --assess --type execute --verbose=2 "$target"
fi
echo "$target is signed, notarized and stapled"
