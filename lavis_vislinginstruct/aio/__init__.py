"""Autonomous Instruction Optimization (VisLingInstruct, NAACL 2024, section 3.2) as a component of its own.

Nothing here imports the model package: a model takes part through :class:`.protocol.AIOBackend`
(``inference/backend.py`` for VisLingInstruct, ``models/hf_vlm.py`` for HF's image-text-to-text models: LLaVA-1.5,
LLaVA-NeXT, Qwen2-VL, ... and InstructBLIP, whose family is ``models/hf_backend.py``).
"""
from .config import AIO_MODES, GUARDS, ORDERS, SELECT_RULES, AIOCfg  # noqa: F401
from .optimizer import InstructionOptimizer  # noqa: F401
from .protocol import AIOBackend  # noqa: F401
from .trace import AIOTrace, format_trace, summarize  # noqa: F401
