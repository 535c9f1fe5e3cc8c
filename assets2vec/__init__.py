"""assets2vec: one vector per 3D asset, and a catalog built on those vectors."""

from render_core import __version__

__all__ = ["__version__"]
