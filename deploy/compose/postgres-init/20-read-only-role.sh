#!/bin/sh
# The database connector's read-only role, created on the first start of an
# empty data volume (after 10-demo-shop.sql): it may connect, read every table
# and view of schema public (those created later by `switchboard` too) and
# nothing else, and its sessions start read-only. The connector refuses to serve
# read-only as a user that can write (see connectors/database/README.md, "How
# read-only is enforced"), so compose connects it as this role. Password:
# POSTGRES_READER_PASSWORD (default switchboard-reader). The Kubernetes local
# overlay creates the same role (deploy/kubernetes/overlays/local/postgres.yaml).
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" \
  -v password="${POSTGRES_READER_PASSWORD:-switchboard-reader}" <<'SQL'
CREATE ROLE switchboard_reader LOGIN PASSWORD :'password';
ALTER ROLE switchboard_reader SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"db" TO switchboard_reader;
GRANT USAGE ON SCHEMA public TO switchboard_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO switchboard_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT ON TABLES TO switchboard_reader;
SQL
