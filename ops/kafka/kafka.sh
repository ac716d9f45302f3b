#!/usr/bin/env bash
# Local Apache Kafka 4.x (KRaft, one combined broker+controller) on 127.0.0.1.
#   kafka.sh fetch   resolve the server jars from Maven Central into $MS_KAFKA_CACHE (once)
#   kafka.sh start   fetch, format storage (first time), start, wait until it answers metadata
#   kafka.sh stop    stop it (SIGTERM, then SIGKILL after 60 s)
#   kafka.sh status  exit 0 when running
# Settings (environment): MS_DATA_DIR (state; Kafka uses $MS_DATA_DIR/kafka), MS_KAFKA_PORT
# (9092), MS_KAFKA_CONTROLLER_PORT (port+1), MS_KAFKA_CACHE (~/.cache/meterstream/kafka-<version>),
# MS_PYTHON (python with kafka-python, for the readiness check; default python3).
# Optional SASL_SSL listener (unset MS_KAFKA_SASL_SSL_PORT: none, the broker is as before):
#   MS_KAFKA_SASL_SSL_PORT          its port on 127.0.0.1 (SASL over TLS, mechanisms PLAIN,
#                                   SCRAM-SHA-256 and SCRAM-SHA-512)
#   MS_KAFKA_SSL_KEYSTORE           the broker's keystore (its key and certificate chain)
#   MS_KAFKA_SSL_KEYSTORE_PASSWORD  its password (also the key's); MS_KAFKA_SSL_KEYSTORE_TYPE: PKCS12
#   MS_KAFKA_SSL_TRUSTSTORE         optional: clients must then present a certificate it trusts (mTLS);
#                                   MS_KAFKA_SSL_TRUSTSTORE_PASSWORD, MS_KAFKA_SSL_TRUSTSTORE_TYPE: PKCS12
#   MS_KAFKA_SASL_USERS             name:password,... (PLAIN users in the listener's JAAS config, and
#                                   SCRAM credentials for both SCRAM mechanisms, set at every start;
#                                   names [A-Za-z0-9._-], passwords without , " \ or newlines)
# The PLAINTEXT listener on 127.0.0.1:$MS_KAFKA_PORT stays (inter-broker traffic, the readiness
# check, local tools); server.properties (mode 600) then holds the PLAIN passwords.
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
sasl_port="${MS_KAFKA_SASL_SSL_PORT:-}"

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

sasl_users() {  # the users of MS_KAFKA_SASL_USERS, one "name password" a line, checked
  local entry name pw
  [ -n "${MS_KAFKA_SASL_USERS:-}" ] || { log "MS_KAFKA_SASL_SSL_PORT needs MS_KAFKA_SASL_USERS"; return 1; }
  IFS=',' read -r -a entries <<<"$MS_KAFKA_SASL_USERS"
  for entry in "${entries[@]}"; do
    name="${entry%%:*}"; pw="${entry#*:}"
    if [[ "$entry" != *:* || ! "$name" =~ ^[A-Za-z0-9._-]+$ || -z "$pw" || "$pw" == *[\"\\]* ]]; then
      log "MS_KAFKA_SASL_USERS: each entry is name:password (name [A-Za-z0-9._-], password without \" or \\)"
      return 1
    fi
    printf '%s %s\n' "$name" "$pw"
  done
}

sasl_ssl_config() {  # the SASL_SSL listener's lines of server.properties
  local users jaas="" name pw
  [ -n "${MS_KAFKA_SSL_KEYSTORE:-}" ] && [ -f "$MS_KAFKA_SSL_KEYSTORE" ] \
    || { log "MS_KAFKA_SASL_SSL_PORT needs MS_KAFKA_SSL_KEYSTORE (a keystore file)"; return 1; }
  [ -n "${MS_KAFKA_SSL_KEYSTORE_PASSWORD:-}" ] || { log "MS_KAFKA_SSL_KEYSTORE_PASSWORD is unset"; return 1; }
  users="$(sasl_users)" || return 1
  local client_auth="listener.name.sasl_ssl.ssl.client.auth=none"
  if [ -n "${MS_KAFKA_SSL_TRUSTSTORE:-}" ]; then
    [ -f "$MS_KAFKA_SSL_TRUSTSTORE" ] || { log "MS_KAFKA_SSL_TRUSTSTORE is not a file"; return 1; }
    client_auth="listener.name.sasl_ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.truststore.location=$MS_KAFKA_SSL_TRUSTSTORE
listener.name.sasl_ssl.ssl.truststore.type=${MS_KAFKA_SSL_TRUSTSTORE_TYPE:-PKCS12}
listener.name.sasl_ssl.ssl.truststore.password=${MS_KAFKA_SSL_TRUSTSTORE_PASSWORD:-}"
  fi
  while read -r name pw; do jaas+=" user_$name=\"$pw\""; done <<<"$users"
  cat <<PROPS
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$jaas;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.location=$MS_KAFKA_SSL_KEYSTORE
listener.name.sasl_ssl.ssl.keystore.type=${MS_KAFKA_SSL_KEYSTORE_TYPE:-PKCS12}
listener.name.sasl_ssl.ssl.keystore.password=$MS_KAFKA_SSL_KEYSTORE_PASSWORD
listener.name.sasl_ssl.ssl.key.password=$MS_KAFKA_SSL_KEYSTORE_PASSWORD
$client_auth
PROPS
}

scram_users() {  # create or update each user's SCRAM credentials (over the PLAINTEXT listener)
  local users name pw cfg mech
  users="$(sasl_users)" || return 1
  cfg="$(mktemp "$kdir/scram.XXXXXX")"  # mode 600: passwords stay off command lines
  while read -r name pw; do
    for mech in SCRAM-SHA-256 SCRAM-SHA-512; do  # one mechanism a request (the broker's rule)
      printf '%s=password=%s\n' "$mech" "$pw" > "$cfg"
      if ! java_run kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" --alter \
          --entity-type users --entity-name "$name" --add-config-file "$cfg" >>"$logdir/scram.log" 2>&1; then
        rm -f "$cfg"; log "setting $mech credentials of $name failed; see $logdir/scram.log"; return 1
      fi
    done
  done <<<"$users"
  rm -f "$cfg"
  log "SASL_SSL on 127.0.0.1:$sasl_port: users $(cut -d' ' -f1 <<<"$users" | paste -sd, -)"
}

write_config() {
  mkdir -p "$kdir/data" "$logdir"
  local listeners="PLAINTEXT://127.0.0.1:$port" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" extra=""
  if [ -n "$sasl_port" ]; then
    listeners+=",SASL_SSL://127.0.0.1:$sasl_port"
    protocols+=",SASL_SSL:SASL_SSL"
    extra="$(sasl_ssl_config)" || return 1
  fi
  ( umask 077; cat > "$kdir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
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
$extra
PROPS
  )
  chmod 600 "$kdir/server.properties"
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
  if [ -n "$sasl_port" ]; then scram_users; fi
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
