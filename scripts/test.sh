#!/usr/bin/env bash
# test.sh runs the whole test suite: it starts the services the tests need, checks formatting,
# go vet and staticcheck, runs every test with the race detector (unit, fixture golden tests,
# integration against the real RabbitMQ/Redis/PostgreSQL, interoperability with Debian's Python
# Celery 5.2), then Celery's own integration suite against Go workers (scripts/celery-suite.sh),
# then gives every fuzz target a short run. FUZZTIME (default 30000x: iterations,
# not seconds, so that a run never ends mid-input with a spurious "context deadline exceeded") sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin

./scripts/services.sh

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
if ! command -v staticcheck >/dev/null 2>&1; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
staticcheck ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== Celery's own integration suite against Go workers (scripts/celery-suite.sh)"
SUITE_DESELECT_EXPECTED=1 ./scripts/celery-suite.sh

echo "== fuzz (${FUZZTIME:-30000x} per target)"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-30000x}" "$pkg"
  done
done
