"""Evaluate VisLingInstruct, as LAVIS's ``evaluate.py``; the work is done by ``lavis_vislinginstruct.evaluate.main``.

    python -m torch.distributed.run --nproc_per_node=8 evaluate.py \
        --cfg-path projects/vislinginstruct/eval/scienceqa_vicuna7b.yaml
    python evaluate.py --cfg-path projects/vislinginstruct/eval/gqa_flant5xl.yaml --options model.aio.mode=off
"""
from lavis_vislinginstruct.evaluate import main
from lavis_vislinginstruct.train import run_command

if __name__ == "__main__":
    run_command(main)
