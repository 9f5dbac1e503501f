#!/bin/bash
# VisLingInstruct Vicuna-13B EMA fine-tuning on 8 GPUs (global batch 32); extra arguments go to train.py,
# e.g. --options run.resume_ckpt_path=output/vislinginstruct/vicuna13b/<job id>/checkpoint_0.pth
cd "$(dirname "$0")/../../.." || exit 1
python -m torch.distributed.run --nproc_per_node="${NPROC:-8}" train.py \
    --cfg-path projects/vislinginstruct/train/vicuna13b.yaml "$@"
