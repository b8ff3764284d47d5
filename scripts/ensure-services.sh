#!/usr/bin/env bash
# Starts the local services the test suite uses (PostgreSQL, MariaDB, Redis) when
# they are installed but not running. Idempotent; never installs anything.
# Tests that need a service that is still absent fail with CI=true and are
# skipped with a message otherwise (or start them with
# `docker compose -f deploy/compose/test-services.yaml up -d --wait`).
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done
  return 1
}

if ! up 5432 && command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
  echo "ensure-services: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_port 5432 || echo "ensure-services: PostgreSQL did not come up" >&2
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  echo "ensure-services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_port 6379 || echo "ensure-services: Redis did not come up" >&2
fi
if ! up 3306 && [[ -x /usr/sbin/mariadbd ]]; then
  echo "ensure-services: starting MariaDB" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_port 3306 || echo "ensure-services: MariaDB did not come up" >&2
fi
for p in 5432:PostgreSQL 3306:MariaDB 6379:Redis; do
  up "${p%%:*}" && echo "ensure-services: ${p#*:} up on 127.0.0.1:${p%%:*}" >&2 \
    || echo "ensure-services: ${p#*:} NOT running on 127.0.0.1:${p%%:*}" >&2
done
exit 0
