#!/bin/bash
# tools/vipmove-netns.sh: two nodes of dc-1 in two network namespaces joined by a veth, etcd in
# the first, netlink VIPs (docs/ha.md, "VIPs that move between nodes"): SIGSTOP of the holder,
# then kill -9 of the holder; prints when the holder's address went and when the other node
# bound it. Root. VIPSMART and ETCD name the binaries (default: from PATH), EXTRA adds serve flags
# (e.g. the --vip-* timers). Cleans up after itself.
set -u
A=vmA$$; B=vmB$$
ip netns add $A; ip netns add $B
ip link add a0 netns $A type veth peer name b0 netns $B
ip -n $A addr add 10.77.0.1/24 dev a0; ip -n $B addr add 10.77.0.2/24 dev b0
ip -n $A link set a0 up; ip -n $B link set b0 up; ip -n $A link set lo up; ip -n $B link set lo up
W=$(mktemp -d)
ip netns exec $A ${ETCD:-etcd} --data-dir $W/etcd --listen-client-urls http://10.77.0.1:2379 --advertise-client-urls http://10.77.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 > $W/etcd.log 2>&1 &
EP=$!
sleep 2
run() { # ns node iface
  ip netns exec $1 ${VIPSMART:-vipsmart} serve --name dc-1 --listen ${4}:9610 --data-dir $W/$2 --socket $W/$2.sock --store etcd --etcd-endpoints http://10.77.0.1:2379 --node $2 --announcer netlink --netlink-interface $3 ${EXTRA:-} > $W/$2.log 2>&1 &
  echo $!
}
P1=$(run $A n1 a0 10.77.0.1); sleep 1.5
P2=$(run $B n2 b0 10.77.0.2); sleep 2
${VIPSMART:-vipsmart} --server $W/n1.sock vip add web 10.77.0.100 >/dev/null
sleep 2
where() { for n in $A $B; do ip -n $n -o addr show | grep -q 10.77.0.100 && echo -n "$n "; done; echo; }
echo "bound at: $(where)"; ip -n $A -o addr show | grep 10.77.0.100; ip -n $B -o addr show | grep 10.77.0.100
${VIPSMART:-vipsmart} --server $W/n2.sock vip show web
H=$(${VIPSMART:-vipsmart} --server $W/n2.sock vip show web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"]["node"])')
if [ $H = n1 ]; then HP=$P1; HN=$A; ON=$B; else HP=$P2; HN=$B; ON=$A; fi
echo "holder $H pid $HP; SIGSTOP"
kill -STOP $HP; t0=$(date +%s%N)
gone=""; there=""
while true; do
  now=$(( ($(date +%s%N)-t0)/1000000 ))
  [ -z "$gone" ] && ! ip -n $HN -o addr show | grep -q 10.77.0.100 && gone=$now
  [ -z "$there" ] && ip -n $ON -o addr show | grep -q 10.77.0.100 && there=$now
  [ -n "$gone" ] && [ -n "$there" ] && break
  [ $now -gt 6000 ] && break
  sleep 0.005
done
echo "frozen holder's address gone after ${gone}ms; other node bound it after ${there}ms"
kill -CONT $HP; sleep 2
echo "after thaw bound at: $(where)"
H2=$(${VIPSMART:-vipsmart} --server $W/n2.sock vip show web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"]["node"])' 2>/dev/null || ${VIPSMART:-vipsmart} --server $W/n1.sock vip show web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"]["node"])')
if [ $H2 = n1 ]; then HP=$P1; HN=$A; ON=$B; else HP=$P2; HN=$B; ON=$A; fi
echo "holder $H2; kill -9"
kill -9 $HP; t0=$(date +%s%N); gone=""; there=""
while true; do
  now=$(( ($(date +%s%N)-t0)/1000000 ))
  [ -z "$gone" ] && ! ip -n $HN -o addr show | grep -q 10.77.0.100 && gone=$now
  [ -z "$there" ] && ip -n $ON -o addr show | grep -q 10.77.0.100 && there=$now
  [ -n "$gone" ] && [ -n "$there" ] && break
  [ $now -gt 6000 ] && break
  sleep 0.005
done
echo "killed holder's address gone after ${gone}ms; other node bound it after ${there}ms"
sleep 1
grep -h "guard\|VIP web" $W/n1.log $W/n2.log | head -20
kill $P1 $P2 2>/dev/null; sleep 1; kill $EP; wait 2>/dev/null
ip netns del $A; ip netns del $B; rm -rf $W
