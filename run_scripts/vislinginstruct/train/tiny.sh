#!/bin/bash
# Tiny VisLingInstruct fine-tuning on CPU with two processes (gloo); generates the demo data first if absent.
cd "$(dirname "$0")/../../.." || exit 1
[ -f demo_output/world/llava_instruct_150k/llava_instruct_150k.json ] || \
    python -m lavis_vislinginstruct.world --out demo_output/world --n-train 64 --n-eval 0
python -m torch.distributed.run --nproc_per_node="${NPROC:-2}" train.py \
    --cfg-path projects/vislinginstruct/train/tiny.yaml "$@"
