"""Base builder of the ``vli_*`` datasets: package-relative configs, local files only.

Differences from LAVIS 1.0.2's ``BaseDatasetBuilder``:

* ``default_config_path`` resolves ``DATASET_CONFIG_DICT`` inside this package (LAVIS resolves it under its own
  root).
* Nothing is ever downloaded. ``_download_ann``/``_download_vis`` do nothing (LAVIS's asserts on a ``url`` key);
  :meth:`VliBuilder.build` checks every file on every rank and raises ``FileNotFoundError`` naming the path and
  the official source (``source`` keys of the YAML).
* Per split, ``storage`` (a path or list) gives the main annotation file(s) and ``<role>_storage`` keys give extra
  named files (``ocr_storage``, ``pid_splits_storage``), handed to the dataset as ``files[role]``. Relative paths
  are under LAVIS's ``cache_root``; absolute paths (``~`` allowed) are used as they are.
* ``options`` (a mapping in the dataset config) are passed to the dataset class as keyword arguments, so an
  unknown option is a ``TypeError`` instead of being ignored.
"""

import logging
import os
from typing import Any, Dict, List, Optional, Union

from lavis.common.registry import registry
from lavis.datasets.builders.base_dataset_builder import BaseDatasetBuilder
from omegaconf import DictConfig, ListConfig, OmegaConf

from lavis_vislinginstruct.paths import package_path

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EXTRA_FILE_SUFFIX = "_storage"


def resolve_storage(path: str) -> str:
    """Absolute path of a config ``storage`` entry: relative ones are under LAVIS's ``cache_root``."""
    path = os.path.expanduser(str(path))
    if os.path.isabs(path):
        return path
    return os.path.join(os.path.expanduser(registry.get_path("cache_root")), path)


def _as_list(value: Union[str, List[str], ListConfig]) -> List[str]:
    return [value] if isinstance(value, str) else list(value)


class VliBuilder(BaseDatasetBuilder):
    """Declarative base: subclasses set ``train_dataset_cls``/``eval_dataset_cls`` and ``DATASET_CONFIG_DICT``."""

    train_dataset_cls = None
    eval_dataset_cls = None
    #: Config type → YAML path relative to the ``lavis_vislinginstruct`` package.
    DATASET_CONFIG_DICT: Dict[str, str] = {}

    @classmethod
    def default_config_path(cls, type: str = "default") -> str:
        """Absolute path of the default YAML of config ``type`` inside this package."""
        return package_path(cls.DATASET_CONFIG_DICT[type])

    def _download_ann(self) -> None:
        """Local only: annotation files are never downloaded (checked in :meth:`build` on every rank)."""

    def _download_vis(self) -> None:
        """Local only: images are never downloaded (checked in :meth:`build` on every rank)."""

    def build(self) -> Dict[str, Any]:
        """Create one dataset per split of ``build_info.annotations`` (``train``/``val``/``test``).

        Returns:
            ``{split: dataset}``.

        Raises:
            FileNotFoundError: If an annotation file or the image folder is missing (names path and source).
        """
        self.build_processors()
        build_info = self.config.build_info
        vis_info = build_info.get(self.data_type)
        vis_root = self._require(vis_info.storage, f"build_info.{self.data_type}.storage", vis_info.get("source"))
        options = self._options()

        datasets = {}
        for split, info in build_info.annotations.items():
            if split not in SPLITS:
                continue
            where = f"build_info.annotations.{split}"
            source = info.get("source")
            ann_paths = [self._require(path, f"{where}.storage", source) for path in _as_list(info.storage)]
            files = {
                key[: -len(EXTRA_FILE_SUFFIX)]: self._require(value, f"{where}.{key}", source)
                for key, value in info.items()
                if key.endswith(EXTRA_FILE_SUFFIX)
            }
            is_train = split == "train"
            dataset_cls = self.train_dataset_cls if is_train else self.eval_dataset_cls
            if dataset_cls is None:
                raise ValueError(f"{type(self).__name__} has no dataset class for split {split!r}")
            datasets[split] = dataset_cls(
                vis_processor=self.vis_processors["train" if is_train else "eval"],
                text_processor=self.text_processors["train" if is_train else "eval"],
                vis_root=vis_root,
                ann_paths=ann_paths,
                split=split,
                files=files,
                **options,
            )
        return datasets

    def _options(self) -> Dict[str, Any]:
        options = self.config.get("options")
        if options is None:
            return {}
        if isinstance(options, DictConfig):
            return OmegaConf.to_container(options, resolve=True)
        return dict(options)

    def _require(self, path: str, config_key: str, source: Optional[str]) -> str:
        """Resolve ``path`` and fail with a helpful message when it does not exist."""
        resolved = resolve_storage(path)
        if not os.path.exists(resolved):
            raise FileNotFoundError(
                f"{self._name()}: {resolved} not found (config {config_key}; relative paths are under "
                f"cache_root {registry.get_path('cache_root')}). It comes from: {source or 'see the dataset README'}. "
                "This plugin never downloads: fetch it from that source and place it there."
            )
        return resolved

    def _name(self) -> str:
        names = [name for name, cls in registry.mapping["builder_name_mapping"].items() if cls is type(self)]
        return names[0] if names else type(self).__name__
