#!/usr/bin/env bash
# run.sh sets up and runs the whole system on this machine: it installs and starts the services
# (RabbitMQ, Redis, PostgreSQL), builds the programs and runs every line of the Procfile under
# foreman. Stop it with Ctrl-C (foreman sends SIGTERM: the worker shuts down warmly).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
./scripts/services.sh
if [ -f schema.sql ]; then
  psql -q -v ON_ERROR_STOP=1 "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}" -f schema.sql
fi
mkdir -p bin
for p in $(awk -F': *' '/^[a-z]+:/ {print $2}' Procfile | awk '{print $2}' | sort -u); do
  go build -o "bin/$p" "./$p"
done
exec foreman start -f Procfile -d .
