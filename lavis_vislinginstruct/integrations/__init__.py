"""Bridges to other evaluation frameworks; each depends on the model, never the other way round.

- :mod:`.lmms_eval`: VisLingInstruct as an lmms-eval model (``pip install -e ".[lmms]"``).
"""
