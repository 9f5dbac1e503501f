"""Settings of Autonomous Instruction Optimization (VisLingInstruct, NAACL 2024, section 3.2, Appendices B and C).

The dataclass is the ``aio`` section of a model config (``model.aio.*``) and the configuration of
:class:`~lavis_vislinginstruct.aio.optimizer.InstructionOptimizer`. It lives here, below the model package, so that
nothing in ``aio/`` depends on the model; the model config embeds it. Fields whose value is one of a fixed set carry
their choices in ``metadata["choices"]``; the config loader checks every value's type and choice when a config is
read, so a typo fails at load time and not when ``generate`` is first called.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple, Union

#: Modes: initial instruction, rewritten only (Table 2's "Rewriting" row), the full method.
AIO_MODES: Tuple[str, ...] = ("off", "rewrite", "full")
#: Which instruction is used after the comparison stage.
SELECT_RULES: Tuple[str, ...] = ("generated", "best_ias")
#: What happens when the optimized instruction lost task content (the question, options, OCR tokens, history).
GUARDS: Tuple[str, ...] = ("none", "content")
#: Order of the (instruction, IAS) pairs in the comparison prompt: by IAS (paper) or shuffled (an ablation).
ORDERS: Tuple[str, ...] = ("ias", "shuffled")


def choices(default: str, allowed: Tuple[str, ...]) -> Any:
    """A dataclass field with a default and its allowed values (checked when the dataclass is built)."""
    return field(default=default, metadata={"choices": allowed})


def check_choices(obj: Any, where: str) -> None:
    """Refuse a field of dataclass ``obj`` whose value is not one of its ``choices`` (called by ``__post_init__``:
    a config is checked once, when it is built, and not again where it is used)."""
    for f in dataclasses.fields(obj):
        allowed = f.metadata.get("choices")
        if allowed is not None and getattr(obj, f.name) not in allowed:
            raise ValueError(f"{where}.{f.name} must be one of {', '.join(allowed)}, got {getattr(obj, f.name)!r}")


@dataclass
class AIOCfg:
    """Autonomous Instruction Optimization settings (used at inference only)."""

    mode: str = choices("off", AIO_MODES)  # off | rewrite | full
    select: str = choices("generated", SELECT_RULES)  # generated (paper) | best_ias (lowest IAS of the three)
    # none: the generated instruction is used as it is (the paper); content: if it lost any of the sample's
    # keep_spans, the best-IAS instruction that keeps them is used instead (our addition). Both count the losses.
    guard: str = choices("content", GUARDS)
    order: str = choices("ias", ORDERS)  # ias: worst first, best last (Figure 3) | shuffled: scores swapped at random
    rewrite_template: str = (
        "There is the text {}. Please modify the text to make it better while retaining the sentence structure "
        "and keywords."
    )
    ias_prompt: str = "Based on the image given, the most appropriate instruction should be:"
    compare_template: str = "Instruction: {instruction} Score: {score:.2f}"
    compare_cue: str = "Write a new instruction with a lower score. Instruction:"
    # cap for rewritten/optimized instructions in new tokens; 0: 1.25 x the longest instruction replaced + 4,
    # never more than max_new_tokens_limit (a 5,000-word instruction must not ask for 6,000 new tokens)
    max_new_tokens: int = 0
    max_new_tokens_limit: int = 160
    num_beams: int = 1
    # draft tokens per step from the prompt for rewrite and comparison (greedy; exact: the same output, fewer passes
    # when the output copies its input, as rewrites do); 0: plain greedy decoding. Decoder-only LLMs only.
    prompt_lookup_num_tokens: int = 5
    memoize_rewrites: bool = True
    cache_size: int = 4096  # rewrites kept (least recently used dropped first)
    seed: int = 0  # seed of the shuffled order (per sample: seed and instruction text)

    def __post_init__(self):
        check_choices(self, "aio")

    def decoding(self) -> Dict[str, Any]:
        """The settings that determine a generated instruction (part of the rewrite cache key; prompt lookup is
        not: it changes how many passes decoding takes, not what it decodes)."""
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "max_new_tokens_limit": self.max_new_tokens_limit,
        }


def aio_settings(options: Union[str, Sequence[str]]) -> AIOCfg:
    """:class:`AIOCfg` with ``options`` (``aio.<field>=value`` items, a list or ``;``-separated) applied; a wrong
    key or value is an error that names it (used where there is no model config: HF models)."""
    fields = {f.name: f for f in dataclasses.fields(AIOCfg)}
    changes: Dict[str, Any] = {}
    items = options.split(";") if isinstance(options, str) else list(options or [])
    for item in (part.strip() for part in items):
        if not item:
            continue
        key, sep, value = item.partition("=")
        name = key.strip()[len("aio."):] if key.strip().startswith("aio.") else None
        if not sep or name not in fields or name == "mode":
            raise ValueError(f"options: {item!r} is not aio.<field>=value; fields: "
                             f"{', '.join(n for n in fields if n != 'mode')} (the mode is set on its own)")
        default = getattr(AIOCfg(), name)
        try:
            if isinstance(default, bool):
                if value.strip().lower() not in ("true", "false"):
                    raise ValueError(value)
                changes[name] = value.strip().lower() == "true"
            else:
                changes[name] = type(default)(value.strip())
        except ValueError:
            raise ValueError(f"options: aio.{name}={value!r} is not a {type(default).__name__}") from None
        allowed = fields[name].metadata.get("choices")
        if allowed and changes[name] not in allowed:
            raise ValueError(f"options: aio.{name} must be one of {', '.join(allowed)}, got {value!r}")
    return dataclasses.replace(AIOCfg(), **changes)
