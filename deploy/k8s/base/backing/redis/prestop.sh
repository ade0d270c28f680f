#!/bin/sh
# Before the master stops, hand the role to a replica ourselves, so a rolling
# update costs a sub-second switch instead of down-after-milliseconds (5 s) of
# failed writes. A failing failover (e.g. no replica in dev) is not fatal.
master="$(timeout 2 redis-cli -p 26379 --raw \
  sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null | head -n 1 || true)"
if [ "$master" = "${HOSTNAME}.redis-headless" ]; then
  timeout 5 redis-cli -p 26379 sentinel failover "$SENTINEL_MASTER" || true
  sleep 10
fi
