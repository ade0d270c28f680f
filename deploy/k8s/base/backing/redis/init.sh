#!/bin/sh
# Writes this pod's redis.conf and sentinel.conf into /conf (an emptyDir).
# Hostnames, not pod IPs, are announced: a pod's IP changes when it restarts.
set -eu

SELF="${HOSTNAME}.redis-headless"

# Who is master now, as the running sentinels see it: after a failover it is
# no longer redis-0. Peers that do not exist or do not answer are skipped.
MASTER=""
for i in 0 1 2 3 4; do
  peer="redis-${i}.redis-headless"
  if [ "$peer" = "$SELF" ]; then
    continue
  fi
  answer="$(timeout 2 redis-cli -h "$peer" -p 26379 --raw \
    sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)"
  case "$answer" in
    redis-*) MASTER="$answer"; break ;;
  esac
done
# No sentinel answered: the group is new, and redis-0 starts as master.
if [ -z "$MASTER" ]; then
  MASTER="redis-0.redis-headless"
fi

cp /scripts/redis.conf /conf/redis.conf
echo "replica-announce-ip ${SELF}" >> /conf/redis.conf
if [ "$MASTER" != "$SELF" ]; then
  echo "replicaof ${MASTER} 6379" >> /conf/redis.conf
fi

cat > /conf/sentinel.conf <<CONF
port 26379
dir /conf
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SELF}
sentinel monitor ${SENTINEL_MASTER} ${MASTER} 6379 ${SENTINEL_QUORUM}
sentinel down-after-milliseconds ${SENTINEL_MASTER} 5000
sentinel failover-timeout ${SENTINEL_MASTER} 60000
sentinel parallel-syncs ${SENTINEL_MASTER} 1
CONF
echo "redis config written: self=${SELF} master=${MASTER}"
