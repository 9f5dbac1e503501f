"""lmms-eval's entry point for VisLingInstruct (NAACL 2024): ``lmms-eval --model vislinginstruct``.

lmms-eval loads every ``lmms_eval.models`` entry point whenever ``lmms_eval.models`` is imported, for any model.
This module is outside the ``lavis_vislinginstruct`` package on purpose: importing that package imports LAVIS
(about 8 s of CPU), while this manifest only names the adapter class, which lmms-eval imports when
``--model vislinginstruct`` is asked for (``lavis_vislinginstruct/integrations/lmms_eval.py``).
"""

MODEL_ID = "vislinginstruct"
ADAPTER = "lavis_vislinginstruct.integrations.lmms_eval.VisLingInstructLmms"


def manifest():
    """The ``ModelManifest`` of ``--model vislinginstruct`` (imported here: lmms-eval calls this while
    ``lmms_eval.models`` is still being imported)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=ADAPTER)
