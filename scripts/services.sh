#!/usr/bin/env bash
# services.sh installs (with apt, only what is missing) and starts (only what is not running)
# everything the system and its tests need: RabbitMQ with the management UI, Redis, PostgreSQL,
# Debian's Python Celery 5.2 (the interoperability peer) with the Django companion apps
# (django-celery-beat, django-celery-results, celery-progress), pytest and its plugins (Celery's own
# integration suite), redis-sentinel, foreman (the Procfile runner), Chromium (the browser tests) and
# wrk (the HTTP benchmarks).
# It is idempotent: running it on a machine where everything is up changes nothing.
set -euo pipefail

log() { echo "services: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: command or file that proves the package is there -> package name.
declare -A wanted=(
  [/usr/sbin/rabbitmq-server]=rabbitmq-server
  [/usr/bin/redis-server]=redis-server
  [/usr/bin/redis-cli]=redis-tools
  [/usr/bin/pg_ctlcluster]=postgresql
  [/usr/bin/psql]=postgresql-client
  [/usr/lib/python3/dist-packages/celery/__init__.py]=python3-celery
  [/usr/lib/python3/dist-packages/redis/__init__.py]=python3-redis
  [/usr/lib/python3/dist-packages/msgpack/__init__.py]=python3-msgpack
  [/usr/lib/python3/dist-packages/yaml/__init__.py]=python3-yaml
  [/usr/lib/python3/dist-packages/django/__init__.py]=python3-django
  [/usr/lib/python3/dist-packages/django_celery_beat/__init__.py]=python3-django-celery-beat
  [/usr/lib/python3/dist-packages/django_celery_results/__init__.py]=python3-django-celery-results
  [/usr/lib/python3/dist-packages/psycopg2/__init__.py]=python3-psycopg2
  [/usr/lib/python3/dist-packages/celery_progress/__init__.py]=python3-celery-progress
  [/usr/lib/python3/dist-packages/pytest/__init__.py]=python3-pytest
  [/usr/lib/python3/dist-packages/pytest_timeout.py]=python3-pytest-timeout
  [/usr/lib/python3/dist-packages/pytest_rerunfailures.py]=python3-pytest-rerunfailures
  [/usr/lib/python3/dist-packages/pytest_subtests.py]=python3-pytest-subtests
  [/usr/bin/redis-sentinel]=redis-sentinel
  [/usr/bin/foreman]=ruby-foreman
  [/usr/bin/curl]=curl
  [/usr/bin/chromium]=chromium
  [/usr/bin/wrk]=wrk
)
missing=()
for path in "${!wanted[@]}"; do
  [ -e "$path" ] || missing+=("${wanted[$path]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 name=$2 i
  for i in $(seq 1 120); do port_open "$port" && return 0; sleep 1; done
  log "$name did not open port $port"; return 1
}

# Redis: no persistence is needed (results expire; tests clean up).
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/forumads.log
  wait_port 6379 redis
fi

# PostgreSQL: the cluster Debian created, trust auth on loopback as this machine kind has it.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    as_root pg_createcluster "$ver" main >/dev/null
  fi
  log "starting postgresql $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || as_root pg_ctlcluster "$ver" main start
  wait_port 5432 postgresql
fi

# The ads database: role and database "forumads" (password "forumads"), reachable over TCP whatever
# pg_hba.conf says for loopback (trust here, scram on a stock Debian). DATABASE_URL's default uses it.
pg_super() { if [ "$(id -un)" = postgres ]; then psql -qtAX "$@"; else as_root runuser -u postgres -- psql -qtAX "$@"; fi; }
if [ "$(pg_super -c "SELECT 1 FROM pg_roles WHERE rolname = 'forumads'")" != 1 ]; then
  log "creating the postgresql role forumads"
  pg_super -c "CREATE ROLE forumads LOGIN PASSWORD 'forumads' CREATEDB"
fi
if [ "$(pg_super -c "SELECT 1 FROM pg_database WHERE datname = 'forumads'")" != 1 ]; then
  log "creating the postgresql database forumads"
  pg_super -c "CREATE DATABASE forumads OWNER forumads"
fi

# RabbitMQ with the management plugin (UI and HTTP API on :15672).
if ! port_open 5672; then
  log "starting rabbitmq"
  as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  as_root rabbitmq-server -detached
  wait_port 5672 rabbitmq
fi
if ! port_open 15672; then
  log "enabling the rabbitmq management plugin"
  as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
  wait_port 15672 rabbitmq-management
fi
# The broker accepts connections a little before it is ready for them.
for i in $(seq 1 60); do
  as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
  sleep 1
done

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  log "Go 1.26 is required (Debian's golang-go is too old); install it at /usr/local/go"; exit 1
fi
log "rabbitmq :5672 (ui :15672), redis :6379, postgresql :5432 are up"
