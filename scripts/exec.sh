#!/usr/bin/env bash
# exec.sh NAME [ARGS...] builds the program ./NAME into bin/NAME (incremental, cached by Go) and
# replaces itself with it, so that signals from foreman (or any supervisor) reach the program itself.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
export PATH=$PATH:/usr/local/go/bin
go build -o "bin/$name" "./$name"
exec "bin/$name" "$@"
