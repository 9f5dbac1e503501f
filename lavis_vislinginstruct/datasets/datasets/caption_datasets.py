"""Zero-shot captioning benchmarks: Flickr30K (Karpathy test, 1000 images) and NoCaps (val, 4500 images).

Samples: ``image``, ``text_input`` (Table 4's "A short image description:"), ``instance_id``, ``keep_spans``
(empty: the instruction has no sample-specific text) and the ground truth ``captions`` (list[str]).
"""

import os
from typing import Any, Dict, List

from lavis_vislinginstruct.datasets.datasets.base import VliDataset, read_json


class CaptionEvalDataset(VliDataset):
    """Common sample layout of the captioning benchmarks."""

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Instruction, id and reference captions of one image."""
        return {
            "text_input": self.text_processor(),
            "instance_id": ann["instance_id"],
            "keep_spans": [],
            "captions": list(ann["captions"]),
        }


class Flickr30kEvalDataset(CaptionEvalDataset):
    """Flickr30K Karpathy split, from either of two files (detected by layout).

    * Karpathy's ``dataset_flickr30k.json``: ``{"images": [{"filename", "split", "sentences": [{"raw"}]}]}``,
      filtered to ``split`` == this dataset's split; images at ``<image_subdir>/<filename>``.
    * LAVIS/BLIP ``flickr30k_test.json``: ``[{"image": "flickr30k-images/<id>.jpg", "caption": [5 str]}]``.

    ``instance_id`` is the Flickr photo id (file stem), as LAVIS's ``image_id``.

    Args:
        image_subdir: Folder of the images under ``vis_root`` for the Karpathy layout.
        **kwargs: See :class:`VliDataset`.
    """

    def __init__(self, *, image_subdir: str = "flickr30k-images", **kwargs):
        self.image_subdir = image_subdir
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Read Karpathy or LAVIS records."""
        records = []
        for path in ann_paths:
            data = read_json(path)
            if isinstance(data, dict) and "images" in data:
                records.extend(self._karpathy(data, path))
            elif isinstance(data, list):
                records.extend(self._lavis(data, path))
            else:
                raise ValueError(f"{path}: neither Karpathy dataset_flickr30k.json nor LAVIS flickr30k_<split>.json")
        return records

    def _karpathy(self, data: Dict[str, Any], path: str) -> List[Dict[str, Any]]:
        records = []
        for entry in data["images"]:
            if entry.get("split") != self.split:
                continue
            captions = [sentence["raw"] for sentence in entry.get("sentences", [])]
            if not captions:
                raise ValueError(f"{path}: image {entry.get('filename')!r} has no sentences")
            records.append(
                {
                    "image": os.path.join(self.image_subdir, entry["filename"]),
                    "instance_id": os.path.splitext(entry["filename"])[0],
                    "captions": captions,
                }
            )
        return records

    @staticmethod
    def _lavis(data: List[Dict[str, Any]], path: str) -> List[Dict[str, Any]]:
        records = []
        for index, entry in enumerate(data):
            captions = entry.get("caption")
            if isinstance(captions, str):
                raise ValueError(
                    f"{path} #{index}: one caption per record is LAVIS's train layout; use the val/test file"
                )
            if not captions or "image" not in entry:
                raise ValueError(f"{path} #{index}: expected {{'image', 'caption': [str, ...]}}")
            records.append(
                {
                    "image": entry["image"],
                    "instance_id": os.path.splitext(os.path.basename(entry["image"]))[0],
                    "captions": list(captions),
                }
            )
        return records


class NoCapsEvalDataset(CaptionEvalDataset):
    """NoCaps from the official ``nocaps_val_4500_captions.json`` (COCO caption format).

    Images at ``<image_subdir>/<file_name>`` under ``vis_root``; ``instance_id`` is the official ``images[].id``
    (the same number as LAVIS's ``img_id``); samples also carry the image's ``domain`` when the file gives one
    (``""`` otherwise), for per-domain scores.

    Args:
        image_subdir: Folder of the split's images under ``vis_root``.
        **kwargs: See :class:`VliDataset`.
    """

    def __init__(self, *, image_subdir: str = "val", **kwargs):
        self.image_subdir = image_subdir
        super().__init__(**kwargs)

    def load_annotations(self, ann_paths: List[str]) -> List[Dict[str, Any]]:
        """Group the COCO-format annotations by image."""
        records = []
        for path in ann_paths:
            data = read_json(path)
            if not isinstance(data, dict) or "images" not in data:
                raise ValueError(f"{path}: expected COCO caption format with 'images' and 'annotations'")
            captions: Dict[Any, List[str]] = {}
            for ann in data.get("annotations", []):
                captions.setdefault(ann["image_id"], []).append(ann["caption"])
            for image in data["images"]:
                if image["id"] not in captions:
                    raise ValueError(f"{path}: image id {image['id']} has no caption (is this the test file?)")
                records.append(
                    {
                        "image": os.path.join(self.image_subdir, image["file_name"]),
                        "instance_id": str(image["id"]),
                        "captions": captions[image["id"]],
                        "domain": image.get("domain", ""),
                    }
                )
        return records

    def build_sample(self, ann: Dict[str, Any]) -> Dict[str, Any]:
        """Captioning sample plus the image's ``domain``."""
        return {**super().build_sample(ann), "domain": ann["domain"]}
