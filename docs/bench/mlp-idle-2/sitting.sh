#!/bin/bash
# /tmp/base: a git worktree of 5683840 (this session's starting point), built; /work/main: the new code. Stop every other process first.
# Idle sitting for issue 16: masked torch peer, our csr step (bench step, steady state), quickstart --jobs 2.
O=/tmp/idle6/out; mkdir -p $O; cd /work/main
PY="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 /work/shared/peers/torch_masked_step.py"
uptime > $O/uptime-start.txt
$PY --hidden 300,100 --steps 200 > $O/torch-lenet-1.txt
$PY --widths 1024,4096,16384 > $O/torch-masked-1.txt
for d in /work/main /tmp/base; do
  tag=$( [ $d = /work/main ] && echo new || echo old )
  (cd $d && node bin/sparsebench.js bench step --model mlp --dataset mnist --method gse --format csr --sparsity 0.98 --steps 1000 --out $O/lenet-$tag.csv > $O/lenet-$tag.txt 2>&1)
  (cd $d && node bin/sparsebench.js bench scaling --methods gse --widths 1024,4096,16384 --steps 500 --delta 50 --out $O/gse-scaling-$tag.csv > $O/gse-scaling-$tag.txt 2>&1)
done
$PY --hidden 300,100 --steps 200 > $O/torch-lenet-2.txt
$PY --widths 1024,4096,16384 > $O/torch-masked-2.txt
rm -rf /tmp/idle6/qs; /usr/bin/time -f "%e s wall" node bin/sparsebench.js run configs/quickstart.json --out /tmp/idle6/qs --jobs 2 > $O/quickstart.txt 2>&1
uptime > $O/uptime-end.txt
