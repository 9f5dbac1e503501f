"""lmms-eval's entry point for VisLingInstruct (NAACL 2024): ``lmms-eval --model vislinginstruct`` and
``lmms-eval --model vislinginstruct_hf`` (AIO on any HF image-text-to-text model).

lmms-eval loads every ``lmms_eval.models`` entry point whenever ``lmms_eval.models`` is imported, for any model.
This module is outside the ``lavis_vislinginstruct`` package on purpose: importing that package imports LAVIS
(about 8 s of CPU), while this manifest only names the adapter classes, which lmms-eval imports when one of them is
asked for (``lavis_vislinginstruct/integrations/lmms_eval.py``, ``lmms_eval_hf.py``). One entry point returns both
manifests (lmms-eval accepts a list), so an installed distribution needs no new entry point for the second.
"""

MODEL_ID = "vislinginstruct"
ADAPTER = "lavis_vislinginstruct.integrations.lmms_eval.VisLingInstructLmms"
HF_MODEL_ID = "vislinginstruct_hf"
HF_ADAPTER = "lavis_vislinginstruct.integrations.lmms_eval_hf.VisLingInstructHFLmms"


def manifest():
    """The ``ModelManifest`` of ``--model vislinginstruct`` and ``--model vislinginstruct_hf`` (imported here:
    lmms-eval calls this while ``lmms_eval.models`` is still being imported)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [ModelManifest(model_id=MODEL_ID, simple_class_path=ADAPTER),
            ModelManifest(model_id=HF_MODEL_ID, simple_class_path=HF_ADAPTER)]
