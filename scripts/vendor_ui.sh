#!/usr/bin/env bash
# Refresh the dashboard's vendored chart library (uPlot) from the npm registry.
# The ledger never fetches anything at run time: the files below are committed and served from
# eval_service/api/ui/static/vendor/. Usage: bash scripts/vendor_ui.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-1.6.32}"
dest="eval_service/api/ui/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "uplot@${version}" >/dev/null)
tar -xzf "$tmp"/uplot-"${version}".tgz -C "$tmp"
mkdir -p "$dest"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$dest/"
cp "$tmp/package/LICENSE" "$dest/uPlot.LICENSE"
echo "uplot@${version}" >"$dest/VERSION"
echo "vendored uplot@${version} into $dest"
