"""VisLingInstruct models; importing this registers ``vislinginstruct_vicuna`` and ``vislinginstruct_t5``."""
from .vislinginstruct import VisLingInstruct, VisLingInstructT5, VisLingInstructVicuna  # noqa: F401
