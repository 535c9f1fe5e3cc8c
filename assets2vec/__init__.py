"""assets2vec: one vector per 3D asset, and a catalog built on those vectors."""

from render_core import __version__

__all__ = ["Catalog", "__version__"]


def __getattr__(name: str):
    # `from assets2vec import Catalog` without importing torch and FAISS for every CLI call.
    if name == "Catalog":
        from assets2vec.api import Catalog

        return Catalog
    raise AttributeError(f"module 'assets2vec' has no attribute {name!r}")
