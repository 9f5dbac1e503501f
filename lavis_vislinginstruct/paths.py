"""Package-relative paths and the one place that touches LAVIS's path registry.

LAVIS resolves ``default_config_path`` against its own package root, so every plugin class overrides it with
:func:`package_path`. LAVIS's ``registry.register_path`` refuses to re-register a name, so moving ``cache_root``
(where datasets' relative ``storage`` paths are resolved) writes the registry mapping directly, here only.
"""
import os

from lavis.common.registry import registry

PACKAGE_ROOT = os.path.dirname(os.path.abspath(__file__))


def package_path(rel: str) -> str:
    """Absolute path of ``rel`` inside the installed ``lavis_vislinginstruct`` package."""
    return os.path.join(PACKAGE_ROOT, rel)


def set_cache_root(path: str) -> str:
    """Point LAVIS's ``cache_root`` (used to resolve relative dataset storage) at ``path``; returns it absolute."""
    path = os.path.abspath(os.path.expanduser(path))
    registry.mapping["paths"]["cache_root"] = path
    return path


def get_cache_root() -> str:
    """The ``cache_root`` LAVIS currently resolves relative dataset paths against."""
    return registry.get_path("cache_root")
