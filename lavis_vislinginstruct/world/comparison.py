"""Training data for AIO's comparison stage (VisLingInstruct, NAACL 2024, section 3.2, Figure 3), scored by the model.

At inference AIO shows the model its two instructions, the initial one and its rewrite, each with its Instruction
Alignment Score, worst first and best last, and asks for "a new instruction with a lower score"
(:func:`lavis_vislinginstruct.aio.prompts.comparison_prompt` with the model config's ``aio.compare_template`` and
``aio.compare_cue``). A pretrained LLM reads such an in-context ranking; the demo's tiny LLM has to learn it, so
the world writes comparison prompts in exactly that format:

1. :func:`candidates` draws pairs as AIO meets them: an *initial* instruction (user style with probability
   :data:`USER_SHARE`, else a common phrasing) and its *rewrite* as the rewrite pairs teach it (user style -> the
   first phrasing, a common phrasing -> the next one). Both keep the content. The world writes them with their
   images (``llava_instruct_150k/comparison_candidates.json``).
2. The demo scores both instructions of every pair with the model's own IAS after a first training phase
   (``VisLingInstructPipeline.alignment_scores``: the mean NLL of the instruction after the image and the Appendix C
   prompt), not with a proxy.
3. :func:`comparison_records` writes one conversation per pair: the human turn is the comparison prompt with those
   scores (ordered by IAS, as AIO orders them), the answer is the instruction the model scored lower. The order is
   the only thing that tells the two apart in the prompt's layout (the lower-scored one is always last), so the
   ``aio.order=shuffled`` ablation measures whether the ranking is what the model uses.

Training on this teaches the format and the content to keep; it does not teach which wording is better: that comes
from the model's own scores. Nothing here depends on LAVIS or the model.
"""

import random
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from lavis_vislinginstruct.aio.prompts import comparison_prompt, order_pairs

from . import instructions as ins
from .scenes import Scene

USER_SHARE = 0.5


def candidates(
    scenes: Sequence[Tuple[str, Scene]], rng: random.Random, mix: str, forbidden: Sequence[str] = ()
) -> List[Dict[str, Any]]:
    """One (initial, rewritten) pair per ``(image name, scene)``, the benchmark family drawn from ``mix``.

    Returns:
        Records ``{"id", "image", "family", "initial", "rewritten", "user"}``.
    """
    _, family_weights = ins.MIXES[mix]
    out = []
    for k, (image, scene) in enumerate(scenes):
        family = ins._weighted(rng, {f: w for f, w in family_weights.items() if f != "flickr30k"},
                               ins.available_families(scene))
        item = ins.benchmark_item(scene, family, rng)
        user = rng.random() < USER_SHARE
        initial = item.user_instruction(rng, forbidden) if user else item.instruction
        rewritten = item.canonical if user else item.rewritten
        out.append({"id": f"cmp{k}", "image": image, "family": family, "initial": initial, "rewritten": rewritten,
                    "user": user})
    return out


def comparison_records(
    pairs: Sequence[Dict[str, Any]],
    scores: Mapping[str, Tuple[float, float]],
    template: str,
    cue: str,
    seed: int = 0,
) -> List[Dict[str, Any]]:
    """LLaVA-format comparison conversations (module docstring).

    Args:
        pairs: Records of :func:`candidates`.
        scores: ``id -> (IAS of initial, IAS of rewritten)``, the model's own.
        template: ``aio.compare_template``.
        cue: ``aio.compare_cue``.
        seed: Seed of the image-marker placement.

    Raises:
        KeyError: If a pair has no scores.
    """
    rng = random.Random(f"vli-world/comparison/{seed}")
    records = []
    for pair in pairs:
        ias_initial, ias_rewritten = scores[pair["id"]]
        scored = [(pair["initial"], float(ias_initial)), (pair["rewritten"], float(ias_rewritten))]
        prompt = comparison_prompt(scored, template, cue)
        better = order_pairs(scored)[-1][0]  # the last line: the lower score (ties: the rewrite, as listed last)
        record = ins.single_turn("comparison", pair["family"], prompt, better, rng)
        records.append({"id": pair["id"], "image": pair["image"], "conversations": record.conversations()})
    return records
