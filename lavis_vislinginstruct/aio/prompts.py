"""The texts AIO puts in front of the LLM (VisLingInstruct, NAACL 2024, section 3.2, Figure 3, Appendices B and C).

Pure functions, shared by the optimizer and by whatever has to produce the same prompts (the demo world's training
data teaches a tiny LLM exactly these formats). Default comparison prompt (``aio.compare_template`` /
``aio.compare_cue``)::

    Instruction: <worst> Score: 2.31
    Instruction: <best> Score: 1.87
    Write a new instruction with a lower score. Instruction:

Each (instruction, IAS) pair is one line, as the ICL demonstrations of Figure 3; descending scores show the model
which direction is better, and the cue asks it to continue the trend with a new instruction. Scores are printed
with two decimals: enough to order them, short enough not to dominate the prompt.
"""
from typing import Sequence, Tuple


def rewrite_prompt(template: str, instruction: str) -> str:
    """Stage 1 (Appendix B): the rewrite template around the instruction."""
    return template.format(instruction)


def order_pairs(pairs: Sequence[Tuple[str, float]]) -> list:
    """The pairs worst (highest IAS) first and best last, as the paper ranks them; ties keep their order."""
    return sorted(pairs, key=lambda p: -p[1])


def comparison_prompt(pairs: Sequence[Tuple[str, float]], template: str, cue: str, ordered: bool = True) -> str:
    """Stage 2: one ``template`` line per ``(instruction, ias)`` pair, then the cue.

    Args:
        pairs: ``(instruction, IAS)`` pairs.
        template: Line format with ``{instruction}`` and ``{score}``.
        cue: The last line, asking for a new instruction.
        ordered: Order the pairs worst to best (the paper); False keeps the given order (the shuffled ablation).
    """
    shown = order_pairs(pairs) if ordered else pairs
    lines = [template.format(instruction=text, score=score) for text, score in shown]
    return "\n".join(lines + [cue])
