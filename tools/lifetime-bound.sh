#!/bin/bash
# tools/lifetime-bound.sh [RUNS]: how long after its last refresh the kernel removes an IPv4
# address bound with valid_lft 1 (docs/ha.md, "VIPs that move between nodes"). Root; it makes
# and deletes a network namespace of its own; prints one figure (ms) per run.
# measure: address with valid_lft 1 refreshed every 200ms; stop refreshing; time until gone
ns=lftm$$
ip netns add $ns
ip -n $ns link add d0 type veth peer name d1; ip -n $ns link set d0 up; ip -n $ns link set d1 up
res=()
for i in $(seq 1 ${1:-10}); do
  ip -n $ns addr add 10.9.9.9/32 dev d0 valid_lft 1 preferred_lft 1
  for j in 1 2 3 4 5; do sleep 0.2; ip -n $ns addr change 10.9.9.9/32 dev d0 valid_lft 1 preferred_lft 1; done
  t0=$(date +%s%N)
  while ip -n $ns addr show dev d0 | grep -q 10.9.9.9; do sleep 0.005; done
  t1=$(date +%s%N)
  res+=($(( (t1-t0)/1000000 )))
  sleep 0.$((RANDOM%9))
done
ip netns del $ns
echo "${res[@]}"
