# Shared helpers for Aira's scripts. Source it; do not run it.
# Everything lives under $AIRA_DATA (default: <checkout>/.data) and listens on 127.0.0.1 only.
set -euo pipefail

AIRA_ROOT="${AIRA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
AIRA_DATA="${AIRA_DATA:-$AIRA_ROOT/.data}"
AIRA_AMQP_PORT="${AIRA_AMQP_PORT:-5672}"
AIRA_AMQP_DIST_PORT="${AIRA_AMQP_DIST_PORT:-25672}"
AIRA_AMQP_MGMT_PORT="${AIRA_AMQP_MGMT_PORT:-15672}"
AIRA_RABBITMQ_PROMETHEUS_PORT="${AIRA_RABBITMQ_PROMETHEUS_PORT:-15692}"
AIRA_REDIS_PORT="${AIRA_REDIS_PORT:-6379}"
AIRA_PG_PORT="${AIRA_PG_PORT:-5432}"
AIRA_PG_REPLICA_PORT="${AIRA_PG_REPLICA_PORT:-5433}"
AIRA_PG_BIN="${AIRA_PG_BIN:-/usr/lib/postgresql/15/bin}"
RABBIT_BIN=/usr/lib/rabbitmq/bin

export PATH="/opt/swift/usr/bin:$PATH"

log() { printf '[aira %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The connection settings every Aira executable and test reads (see docs/configuration.md).
aira_export_env() {
  export AIRA_AMQP_URL="${AIRA_AMQP_URL:-amqp://guest:guest@127.0.0.1:$AIRA_AMQP_PORT/}"
  export AIRA_REDIS_URL="${AIRA_REDIS_URL:-redis://127.0.0.1:$AIRA_REDIS_PORT}"
  export AIRA_DATABASE_URL="${AIRA_DATABASE_URL:-postgres://aira:aira@127.0.0.1:$AIRA_PG_PORT/aira}"
  # Reads go to the streaming replica when one runs (AIRA_READ_REPLICA=1; docs/search.md).
  if [ "${AIRA_READ_REPLICA:-0}" = 1 ]; then
    export AIRA_DATABASE_READ_URL="${AIRA_DATABASE_READ_URL:-postgres://aira:aira@127.0.0.1:$AIRA_PG_REPLICA_PORT/aira}"
  fi
  export AIRA_RABBITMQCTL="$AIRA_ROOT/scripts/rabbitmqctl"
  export AIRA_RABBITMQ_MANAGEMENT_URL="${AIRA_RABBITMQ_MANAGEMENT_URL:-http://guest:guest@127.0.0.1:$AIRA_AMQP_MGMT_PORT}"
  # Uploads and thumbnails, shared by aira-gateway and aira-thumbnail-worker.
  export AIRA_MEDIA_DIR="${AIRA_MEDIA_DIR:-$AIRA_DATA/media}"
  # The web app the gateway serves (docs/web.md).
  export AIRA_WEB_DIR="${AIRA_WEB_DIR:-$AIRA_ROOT/Services/AiraGateway/Web}"
}

# --- installation -----------------------------------------------------------------

APT_PACKAGES=(rabbitmq-server redis-server postgresql libpq-dev librabbitmq-dev libhiredis-dev libjemalloc-dev
              postgresql-15-rum amqp-tools ca-certificates procps docker-compose python3-venv ffmpeg wamerican)

aira_install() {
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v swift >/dev/null || die "swift not found (expected at /opt/swift/usr/bin)"
}

# --- RabbitMQ ------------------------------------------------------------------------

rabbit_env() {
  local d="$AIRA_DATA/rabbitmq"
  mkdir -p "$d/mnesia" "$d/log" "$d/home"
  export HOME="$d/home"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_PID_FILE="$d/rabbitmq.pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq"
  export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AIRA_AMQP_PORT"
  export RABBITMQ_DIST_PORT="$AIRA_AMQP_DIST_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Schedulers that sleep when idle instead of spinning (+sbwt none ...): on a small shared
  # machine the spinning took CPU from the services beside the broker (docs/operations.md).
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} ${AIRA_RABBITMQ_ERL_ARGS-+sbwt none +sbwtdcpu none +sbwtdio none}"
  # The management API (scripts/run status, aira-admin) and Prometheus metrics per queue
  # (:15692/metrics/per-object, what the dashboards and alert rules read).
  echo '[rabbitmq_management,rabbitmq_prometheus].' > "$d/enabled_plugins"
  cat > "$d/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$AIRA_AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $AIRA_AMQP_MGMT_PORT
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $AIRA_RABBITMQ_PROMETHEUS_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
CONF
}

rabbit_ctl() { ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" "$@" ); }

rabbit_start() ( # a subshell: rabbit_env changes HOME
  rabbit_env
  if "$RABBIT_BIN/rabbitmqctl" -q status >/dev/null 2>&1; then log "rabbitmq already running"; exit 0; fi
  log "starting rabbitmq on 127.0.0.1:$AIRA_AMQP_PORT"
  "$RABBIT_BIN/rabbitmq-server" -detached
  local i
  for i in $(seq 1 120); do
    if "$RABBIT_BIN/rabbitmqctl" -q await_startup --timeout 5 >/dev/null 2>&1; then
      log "rabbitmq ready"; exit 0
    fi
    sleep 0.5
  done
  tail -n 40 "$RABBITMQ_LOG_BASE"/*.log >&2 || true
  die "rabbitmq did not start"
)

rabbit_stop() ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true )
rabbit_running() ( rabbit_env; "$RABBIT_BIN/rabbitmqctl" -q status >/dev/null 2>&1 )
redis_running() { redis-cli -p "$AIRA_REDIS_PORT" ping >/dev/null 2>&1; }
pg_running() { pg_as "$AIRA_PG_BIN/pg_isready -q -h 127.0.0.1 -p $AIRA_PG_PORT" 2>/dev/null; }

# --- Redis -----------------------------------------------------------------------------

redis_start() {
  local d="$AIRA_DATA/redis"; mkdir -p "$d"
  if redis-cli -p "$AIRA_REDIS_PORT" ping >/dev/null 2>&1; then log "redis already running"; return; fi
  log "starting redis on 127.0.0.1:$AIRA_REDIS_PORT"
  redis-server --port "$AIRA_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$d" \
    --logfile "$d/redis.log" --pidfile "$d/redis.pid" --save "" --appendonly no
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$AIRA_REDIS_PORT" ping >/dev/null 2>&1 && { log "redis ready"; return; }
    sleep 0.05
  done
  die "redis did not start"
}

redis_stop() { redis-cli -p "$AIRA_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; }

# --- PostgreSQL --------------------------------------------------------------------------

# The data folder must be reachable by the postgres user; a checkout under a private home is not.
pg_dir() {
  local d="$AIRA_DATA/postgres"
  mkdir -p "$d"
  if su postgres -s /bin/sh -c "test -x '$d'" 2>/dev/null; then echo "$d"; else
    d="/tmp/aira-pg-$(echo "$AIRA_DATA" | md5sum | cut -c1-8)"; mkdir -p "$d"; echo "$d"; fi
}

pg_as() { su postgres -s /bin/sh -c "$*"; }

# Memory and WAL sized for this machine kind (24 GiB) instead of PostgreSQL's defaults for a
# small box (128 MB of shared buffers, 1 GB of WAL between checkpoints): the audit log's indexes
# stay in shared buffers, and bursts of inserts do not force checkpoints. AIRA_PG_SHARED_BUFFERS
# and AIRA_PG_MAX_WAL_SIZE override them.
pg_tuning() {
  echo "-c shared_buffers=${AIRA_PG_SHARED_BUFFERS:-2GB} -c max_wal_size=${AIRA_PG_MAX_WAL_SIZE:-4GB} -c checkpoint_timeout=15min"
}

pg_start() {
  local d; d="$(pg_dir)"
  chown postgres:postgres "$d"; chmod 700 "$d"
  if pg_as "$AIRA_PG_BIN/pg_isready -q -h 127.0.0.1 -p $AIRA_PG_PORT"; then log "postgresql already running"; return; fi
  if [ ! -f "$d/data/PG_VERSION" ]; then
    log "initialising postgresql in $d/data"
    pg_as "$AIRA_PG_BIN/initdb -D '$d/data' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" >/dev/null
  fi
  mkdir -p "$d/run"; chown postgres:postgres "$d/run"
  log "starting postgresql on 127.0.0.1:$AIRA_PG_PORT"
  pg_as "$AIRA_PG_BIN/pg_ctl -D '$d/data' -l '$d/postgres.log' -w -t 60 start -o \"-c listen_addresses=127.0.0.1 -p $AIRA_PG_PORT -c unix_socket_directories=$d/run $(pg_settings)\"" >/dev/null
  pg_as "psql -q -h '$d/run' -p $AIRA_PG_PORT -U postgres -d postgres -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aira') THEN
    CREATE ROLE aira LOGIN PASSWORD 'aira' CREATEDB;
  END IF;
  -- The streaming replica's login (scripts/servers replica-start).
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aira_replicator') THEN
    CREATE ROLE aira_replicator LOGIN REPLICATION PASSWORD 'aira_replicator';
  END IF;
END $$;
-- aira-admin db slow reads every statement's figures.
GRANT pg_read_all_stats TO aira;
SELECT 'CREATE DATABASE aira OWNER aira' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'aira')\gexec
-- RUM (newest search matches straight from the index; migration 0007) in every database made
-- from now on, and in aira.
\c template1
CREATE EXTENSION IF NOT EXISTS rum SCHEMA public;
\c aira
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO aira;
CREATE EXTENSION IF NOT EXISTS rum SCHEMA public;
-- The tests pause and resume the replica's replay (the grant replicates to it).
GRANT EXECUTE ON FUNCTION pg_wal_replay_pause(), pg_wal_replay_resume() TO aira;
SQL
  log "postgresql ready"
}

# Settings both the primary and the replica start with: pg_stat_statements loaded (aira-admin db
# slow), room for the load tests' connections, replication on.
pg_settings() {
  echo "-c max_connections=300 -c fsync=${AIRA_PG_FSYNC:-on} -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c hot_standby_feedback=on -c wal_keep_size=1GB $(pg_tuning)"
}

# --- PostgreSQL streaming replica (AIRA_READ_REPLICA=1) -------------------------------------
# A real standby of the local primary: pg_basebackup, then streaming replication, read-only on
# AIRA_PG_REPLICA_PORT. Re-cloned when its data belongs to another primary (a re-initialised one).

pg_replica_running() { pg_as "$AIRA_PG_BIN/pg_isready -q -h 127.0.0.1 -p $AIRA_PG_REPLICA_PORT" 2>/dev/null; }

pg_system_id() { "$AIRA_PG_BIN/pg_controldata" -D "$1" 2>/dev/null | awk -F: '/system identifier/ {gsub(/ /, "", $2); print $2}'; }

pg_replica_start() {
  local d r; d="$(pg_dir)"; r="$d/replica"
  if pg_replica_running; then log "postgresql replica already running"; return; fi
  pg_running || die "the primary postgresql is not running"
  mkdir -p "$r"; chown postgres:postgres "$r"; chmod 700 "$r"
  if [ -f "$r/data/PG_VERSION" ] && [ "$(pg_system_id "$r/data")" != "$(pg_system_id "$d/data")" ]; then
    log "replica data belongs to another primary: cloning again"; rm -rf "$r/data"
  fi
  if [ ! -f "$r/data/PG_VERSION" ]; then
    log "cloning the primary into $r/data (pg_basebackup)"
    local t0=$SECONDS
    pg_as "$AIRA_PG_BIN/pg_basebackup -D '$r/data' -R -X stream -c fast -d 'host=127.0.0.1 port=$AIRA_PG_PORT user=aira_replicator password=aira_replicator application_name=aira_replica'"
    log "cloned in $((SECONDS - t0)) s"
  fi
  mkdir -p "$r/run"; chown postgres:postgres "$r/run"
  log "starting postgresql replica on 127.0.0.1:$AIRA_PG_REPLICA_PORT"
  pg_as "$AIRA_PG_BIN/pg_ctl -D '$r/data' -l '$r/postgres.log' -w -t 120 start -o \"-c listen_addresses=127.0.0.1 -p $AIRA_PG_REPLICA_PORT -c unix_socket_directories=$r/run $(pg_settings)\"" >/dev/null
  log "postgresql replica ready"
}

pg_replica_stop() {
  local r; r="$(pg_dir)/replica"
  [ -f "$r/data/PG_VERSION" ] && pg_as "$AIRA_PG_BIN/pg_ctl -D '$r/data' -m fast -w stop" >/dev/null 2>&1 || true
}

pg_stop() {
  local d; d="$(pg_dir)"
  [ -f "$d/data/PG_VERSION" ] && pg_as "$AIRA_PG_BIN/pg_ctl -D '$d/data' -m fast -w stop" >/dev/null 2>&1 || true
}

servers_start() {
  rabbit_start; redis_start; pg_start
  if [ "${AIRA_READ_REPLICA:-0}" = 1 ]; then pg_replica_start; fi
}

# The browser suite's tools: Debian's Chromium and fonts that render CJK and emoji, and
# Playwright for Python (driving /usr/bin/chromium: Playwright's own browser download cannot
# work here) with pytest, and pika (the suite puts dead letters in the broker), in the
# project's venv. Exports AIRA_CHROMIUM.
browser_tools() {
  aira_install chromium fonts-noto-color-emoji fonts-wqy-microhei
  local venv="$AIRA_DATA/venv"
  if ! "$venv/bin/python" -c "import playwright, pytest, pytest_playwright, pika" 2>/dev/null; then
    log "installing playwright, pytest, pytest-playwright and pika into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "playwright>=1.40,<2" "pytest>=7,<9" "pytest-playwright>=0.4,<1" "pika>=1.3,<2"
  fi
  export AIRA_CHROMIUM=/usr/bin/chromium
}
servers_stop() { rabbit_stop; redis_stop; pg_replica_stop; pg_stop; }

# Schemathesis (the fault suite's fuzz-api case), in the project's venv (after python_tools).
fuzz_tools() {
  local venv="$AIRA_DATA/venv"
  if ! "$venv/bin/python" -c "import schemathesis" 2>/dev/null; then
    log "installing schemathesis into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis>=4.3,<5"
  fi
}

# The official `openai` Python package, in a virtualenv under .data/ (the GPT tests use it as
# a client against the gateway). Exports AIRA_OPENAI_PYTHON.
# The Python tools (in .data/venv): the official `openai` package (a client in the GPT tests)
# and `aiosmtpd` (the development SMTP server, scripts/lib/smtp_server.py).
python_tools() {
  local venv="$AIRA_DATA/venv"
  if ! "$venv/bin/python" -c "import openai, aiosmtpd" 2>/dev/null; then
    log "installing the openai and aiosmtpd Python packages into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.40,<3" "aiosmtpd>=1.4,<2"
  fi
  export AIRA_OPENAI_PYTHON="$venv/bin/python"
  export AIRA_PYTHON="$venv/bin/python"
  export AIRA_SMTP_SERVER_SCRIPT="$AIRA_ROOT/scripts/lib/smtp_server.py"
}

# Locust and matplotlib (scripts/load), in the project's venv (after python_tools).
load_tools() {
  local venv="$AIRA_DATA/venv"
  if ! "$venv/bin/python" -c "import locust, matplotlib" 2>/dev/null; then
    log "installing locust and matplotlib into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "locust>=2.30,<3" "matplotlib>=3.8,<4"
  fi
}

# kubernetes-validate (it ships the Kubernetes schemas) and PyYAML, for scripts/test-kubernetes
# (after python_tools).
kube_tools() {
  local venv="$AIRA_DATA/venv"
  if ! "$venv/bin/python" -c "import kubernetes_validate, yaml" 2>/dev/null; then
    log "installing kubernetes-validate and PyYAML into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate>=1.31,<2" "PyYAML>=6,<7"
  fi
}
