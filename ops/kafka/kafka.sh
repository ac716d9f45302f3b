#!/usr/bin/env bash
# Local Apache Kafka 4.x (KRaft, one combined broker+controller) on 127.0.0.1.
#   kafka.sh fetch   resolve the server jars from Maven Central into $MS_KAFKA_CACHE (once)
#   kafka.sh start   fetch, format storage (first time), start, wait until it answers metadata
#   kafka.sh stop    stop it (SIGTERM, then SIGKILL after 60 s)
#   kafka.sh status  exit 0 when running
# Settings (environment): MS_DATA_DIR (state; Kafka uses $MS_DATA_DIR/kafka), MS_KAFKA_PORT
# (9092), MS_KAFKA_CONTROLLER_PORT (port+1), MS_KAFKA_CACHE (~/.cache/meterstream/kafka-<version>),
# MS_PYTHON (python with kafka-python, for the readiness check; default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
data_dir="${MS_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/meterstream}"
kdir="$data_dir/kafka"
port="${MS_KAFKA_PORT:-9092}"
cport="${MS_KAFKA_CONTROLLER_PORT:-$((port + 1))}"
cache="${MS_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meterstream/kafka-$version}"
python="${MS_PYTHON:-python3}"
pidfile="$kdir/kafka.pid"
logdir="$kdir/logs"

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$cache/.complete" ]; then return 0; fi
  log "resolving org.apache.kafka:kafka_2.13:$version from Maven Central into $cache"
  mkdir -p "$cache"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache" >&2
  ls "$cache"/kafka_2.13-"$version".jar >/dev/null
  touch "$cache/.complete"
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

java_run() {  # java_run MAINCLASS ARGS...
  java -Xms256m -Xmx1g -Dkafka.logs.dir="$logdir" \
       -Dlog4j2.configurationFile="$here/log4j2.xml" \
       -cp "$cache/*" "$@"
}

write_config() {
  mkdir -p "$kdir/data" "$logdir"
  cat > "$kdir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kdir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
}

wait_ready() {
  local deadline=$((SECONDS + ${MS_KAFKA_START_TIMEOUT:-90}))
  while [ $SECONDS -lt $deadline ]; do
    if ! running; then
      log "broker exited during start; last lines of $logdir/server.log and $logdir/stdout.log:"
      tail -n 30 "$logdir/server.log" "$logdir/stdout.log" >&2 || true
      return 1
    fi
    if "$python" - "$port" <<'PY' 2>/dev/null
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000,
                         client_id="meterstream-readiness")
admin.list_topics()  # a metadata request answered by the broker
admin.close()
PY
    then
      log "ready on 127.0.0.1:$port (logs: $logdir/server.log)"
      return 0
    fi
    sleep 1
  done
  log "not ready after ${MS_KAFKA_START_TIMEOUT:-90}s; see $logdir/server.log"
  return 1
}

start() {
  if running; then log "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  fetch
  write_config
  if [ ! -f "$kdir/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid)"
    java_run kafka.tools.StorageTool format --standalone -t "$cluster_id" \
        -c "$kdir/server.properties" >"$logdir/format.log" 2>&1 \
      || { cat "$logdir/format.log" >&2; return 1; }
  fi
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Dkafka.logs.dir="$logdir" \
      -Dlog4j2.configurationFile="$here/log4j2.xml" \
      -cp "$cache/*" kafka.Kafka "$kdir/server.properties" \
      >"$logdir/stdout.log" 2>&1 </dev/null &
  echo $! > "$pidfile"
  wait_ready
}

stop() {
  if ! running; then rm -f "$pidfile"; log "not running"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
    sleep 1
  done
  log "no clean exit after 60s; killing pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
