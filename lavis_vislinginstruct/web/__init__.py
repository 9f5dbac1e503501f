"""The web demo: ``python -m lavis_vislinginstruct.web`` (Gradio). Vanilla, EMA and EMA + AIO answer the same
question side by side (VisLingInstruct, NAACL 2024, Figure 4); see :mod:`.app`."""
