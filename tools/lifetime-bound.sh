#!/bin/bash
# tools/lifetime-bound.sh [RUNS] [-6]: how long after its last refresh the kernel removes an
# address bound with valid_lft 1 (docs/ha.md, "VIPs that move between nodes"): IPv4 by default,
# IPv6 with -6. Root; it makes and deletes a network namespace of its own; prints one figure (ms)
# per run: the address is refreshed every 200ms five times, then left alone, and polled every 5ms.
runs=${1:-10}
addr=10.9.9.9/32; show="addr show"; flags=""
if [ "${2:-}" = "-6" ]; then addr=2001:db8::9/128; show="-6 addr show"; flags=nodad; fi
ip=${addr%/*}
ns=lftm$$
ip netns add $ns
ip -n $ns link add d0 type veth peer name d1; ip -n $ns link set d0 up; ip -n $ns link set d1 up
res=()
for i in $(seq 1 $runs); do
  ip -n $ns addr add $addr dev d0 valid_lft 1 preferred_lft 1 $flags
  for j in 1 2 3 4 5; do sleep 0.2; ip -n $ns addr change $addr dev d0 valid_lft 1 preferred_lft 1; done
  t0=$(date +%s%N)
  while ip -n $ns $show dev d0 | grep -q "$ip"; do sleep 0.005; done
  t1=$(date +%s%N)
  res+=($(( (t1-t0)/1000000 )))
  sleep 0.$((RANDOM%9))
done
ip netns del $ns
echo "${res[@]}"
