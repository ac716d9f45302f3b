#!/usr/bin/env bash
# Local Apache Kafka 4.x (KRaft, one combined broker+controller) on 127.0.0.1.
#   kafka.sh fetch   resolve the server jars from Maven Central into $MS_KAFKA_CACHE (once)
#   kafka.sh start   fetch, format storage (first time), start, wait until it answers metadata
#   kafka.sh stop    stop it (SIGTERM, then SIGKILL after 60 s)
#   kafka.sh status  exit 0 when running
#   kafka.sh acls …  Kafka's AclCommand (kafka-acls.sh) on the local broker, as its own account
#                    (SASL on), e.g. `kafka.sh acls --list`
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
#   MS_KAFKA_SUPER_USERS            optional: name,... ; the broker then enforces ACLs (StandardAuthorizer):
#                                   these users and its own account may do anything, any other user only
#                                   what an ACL allows (kafka.sh acls; see docs/security.md)
# With SASL on, no listener is left unauthenticated: the one on 127.0.0.1:$MS_KAFKA_PORT becomes
# SASL_PLAINTEXT and the controller's too, both for one account of the broker's own,
# meterstream-admin, whose password is made at the first start in $MS_DATA_DIR/kafka/admin.secret
# (mode 600; admin.properties beside it is a client config for Kafka's tools). server.properties
# (mode 600) holds the passwords.
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

fetch() {  # again whenever pom.xml changes (its hash is the stamp)
  local stamp
  stamp="$(sha256sum "$here/pom.xml" | cut -c1-16)"
  if [ "$(cat "$cache/.complete" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  log "resolving org.apache.kafka:kafka_2.13:$version from Maven Central into $cache"
  mkdir -p "$cache"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache" >&2
  ls "$cache"/kafka_2.13-"$version".jar "$cache"/kafka-tools-"$version".jar >/dev/null
  echo "$stamp" > "$cache/.complete"
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

scram_users() {  # create or update each user's SCRAM credentials (as meterstream-admin, on the internal listener)
  local users name pw cfg mech
  users="$(sasl_users)" || return 1
  cfg="$(mktemp "$kdir/scram.XXXXXX")"  # mode 600: passwords stay off command lines
  while read -r name pw; do
    for mech in SCRAM-SHA-256 SCRAM-SHA-512; do  # one mechanism a request (the broker's rule)
      printf '%s=password=%s\n' "$mech" "$pw" > "$cfg"
      if ! java_run kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" \
          --command-config "$kdir/admin.properties" --alter \
          --entity-type users --entity-name "$name" --add-config-file "$cfg" >>"$logdir/scram.log" 2>&1; then
        rm -f "$cfg"; log "setting $mech credentials of $name failed; see $logdir/scram.log"; return 1
      fi
    done
  done <<<"$users"
  rm -f "$cfg"
  log "SASL_SSL on 127.0.0.1:$sasl_port: users $(cut -d' ' -f1 <<<"$users" | paste -sd, -)"
}

admin_secret() {  # the broker's own account's password (SASL on): made once, mode 600
  if [ ! -s "$kdir/admin.secret" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 > "$kdir/admin.secret")
  fi
  cat "$kdir/admin.secret"
}

admin_config() {  # SASL on: the internal and controller listeners, for meterstream-admin only
  local pw jaas
  pw="$(admin_secret)"
  jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"meterstream-admin\" password=\"$pw\" user_meterstream-admin=\"$pw\";"
  if [ -n "${MS_KAFKA_SUPER_USERS:-}" ]; then
    local supers="User:meterstream-admin" name
    IFS=',' read -r -a names <<<"$MS_KAFKA_SUPER_USERS"
    for name in "${names[@]}"; do
      [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { log "MS_KAFKA_SUPER_USERS: names are [A-Za-z0-9._-]"; return 1; }
      supers+=";User:$name"
    done
    printf 'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\nsuper.users=%s\n' "$supers"
  fi
  cat <<PROPS
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.internal.sasl.enabled.mechanisms=PLAIN
listener.name.internal.plain.sasl.jaas.config=$jaas
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$jaas
PROPS
  (umask 077; cat > "$kdir/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="meterstream-admin" password="$pw";
PROPS
  )
}

write_config() {
  # the data directory holds every segment: closed to other users (0700), whoever made it
  (umask 077; mkdir -p "$kdir/data" "$logdir")
  chmod 700 "$data_dir" "$kdir"
  local listeners="PLAINTEXT://127.0.0.1:$port" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" extra=""
  local internal="PLAINTEXT"
  if [ -n "$sasl_port" ]; then
    internal="INTERNAL"
    listeners="INTERNAL://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sasl_port"
    protocols="CONTROLLER:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    extra="$(sasl_ssl_config)" || return 1
    extra+=$'\n'"$(admin_config)" || return 1
  fi
  ( umask 077; cat > "$kdir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$listeners,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
inter.broker.listener.name=$internal
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
    if MS_KAFKA_ADMIN_SECRET_FILE="$([ -n "$sasl_port" ] && echo "$kdir/admin.secret")" \
        "$python" - "$port" <<'PY' 2>/dev/null
import os
import sys
from kafka import KafkaAdminClient
secret = os.environ.get("MS_KAFKA_ADMIN_SECRET_FILE")
auth = {} if not secret else dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                  sasl_plain_username="meterstream-admin",
                                  sasl_plain_password=open(secret).read().strip())
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000,
                         client_id="meterstream-readiness", **auth)
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

acls() {  # AclCommand on the local broker, as its own account when SASL is on
  local auth=()
  [ -f "$kdir/admin.properties" ] && [ -n "$sasl_port" ] && auth=(--command-config "$kdir/admin.properties")
  java_run org.apache.kafka.tools.AclCommand --bootstrap-server "127.0.0.1:$port" "${auth[@]}" "$@"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running ;;
  acls) shift; fetch && acls "$@" ;;
  *) echo "usage: $0 fetch|start|stop|status|acls ARGS" >&2; exit 2 ;;
esac
