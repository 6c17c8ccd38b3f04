#!/usr/bin/env bash
# Start/stop a private RabbitMQ node for tests: ./infra/rabbitmq.sh start|stop|status
# The node listens on 127.0.0.1:${RABBITMQ_TEST_PORT:-5673} (guest/guest), keeps its state under
# ${RABBITMQ_TEST_DIR:-/tmp/attribution-rabbitmq}, and is named attribution-tests-PORT@localhost so it never clashes
# with a system RabbitMQ on 5672 or another test run. `start` first stops a stale node left by a crashed run; `stop` also ends the epmd it started.
set -euo pipefail
PORT="${RABBITMQ_TEST_PORT:-5673}"
DIR="${RABBITMQ_TEST_DIR:-/tmp/attribution-rabbitmq}"
NODE="attribution-tests-$PORT@localhost"   # one node name per port: parallel runs on one machine do not clash
BIN=/usr/lib/rabbitmq/bin
[ -x "$BIN/rabbitmq-server" ] || BIN="$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /usr/sbin/rabbitmq-server)")"
if [ ! -x "$BIN/rabbitmq-server" ]; then
  echo "rabbitmq-server is not installed: install the Debian package rabbitmq-server (./pipeline test does it)" >&2
  exit 3
fi

mkdir -p "$DIR/home" "$DIR/mnesia" "$DIR/log"
export HOME="$DIR/home"   # the Erlang VM needs HOME for its cookie; rabbitmqctl must see the same one
export RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$PORT"
export RABBITMQ_DIST_PORT="$((PORT + 20000))" RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log"
export RABBITMQ_PID_FILE="$DIR/rabbit.pid" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
[ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"

ctl() { "$BIN/rabbitmqctl" -n "$NODE" "$@"; }

stop() {
  local pid=""
  [ -f "$RABBITMQ_PID_FILE" ] && pid="$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    ctl stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    # Wait for the VM to exit (a node that ignores the polite stop gets SIGKILL after 30 s).
    for i in $(seq 1 120); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$i" -eq 120 ] && kill -9 "$pid" 2>/dev/null || true
      sleep 0.25
    done
  fi
  rm -f "$RABBITMQ_PID_FILE"
  if [ -f "$DIR/epmd.started" ]; then epmd -kill >/dev/null 2>&1 || true; rm -f "$DIR/epmd.started"; fi
}

case "${1:-}" in
  start)
    stop
    if ! epmd -names >/dev/null 2>&1; then touch "$DIR/epmd.started"; fi
    "$BIN/rabbitmq-server" -detached >"$DIR/log/start.out" 2>&1 || { cat "$DIR/log/start.out" >&2; exit 1; }
    # Poll until the node answers and the AMQP listener is up (never sleep a fixed time and hope).
    # The AMQP port opens last in boot, so poll it cheaply (rabbitmqctl itself costs an Erlang VM start).
    for _ in $(seq 1 240); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "rabbitmq ready on 127.0.0.1:$PORT (node $NODE)"; exit 0
      fi
      sleep 0.25
    done
    echo "rabbitmq did not start within 60 s; see $DIR/log" >&2; stop; exit 1 ;;
  stop) stop; echo "rabbitmq stopped" ;;
  status) ctl status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
