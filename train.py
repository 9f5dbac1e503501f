"""Train VisLingInstruct, as LAVIS's ``train.py``; the work is done by :func:`lavis_vislinginstruct.train.main`.

python -m torch.distributed.run --nproc_per_node=8 train.py --cfg-path projects/vislinginstruct/train/vicuna7b.yaml
python -m torch.distributed.run --nproc_per_node=2 train.py --cfg-path projects/vislinginstruct/train/tiny.yaml
"""

from lavis_vislinginstruct.train import main, run_command

if __name__ == "__main__":
    run_command(main)
