"""render_core: geometry to pixels with PyTorch3D (asset loading, procedural families, rigs, fast rasterisation, multiview datasets)."""

__version__ = "0.1.0"
