#!/usr/bin/env bash
# Usage: check_exports.sh bridge.h libpoc_native.so
# Fails unless the library exports exactly the functions that bridge.h declares (POC_API ...).
set -euo pipefail
header="$1" lib="$2"
declared=$(sed -nE 's/.*POC_API[^(]*[^a-z0-9_](poc_[a-z0-9_]+)\(.*/\1/p' "$header" | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TW]$/ { print $3 }' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
echo "bridge.h declares $(echo "$declared" | wc -l) functions; $(basename "$lib") exports $(echo "$exported" | wc -l)"
[ -z "$missing" ] || { echo "declared in bridge.h but not exported:"; echo "$missing"; }
[ -z "$extra" ] || { echo "exported but not declared in bridge.h:"; echo "$extra"; }
[ -z "$missing" ] && [ -z "$extra" ]
