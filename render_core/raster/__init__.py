"""Rasterizers returning PyTorch3D `Fragments`: a fast CPU path and the stock CUDA path."""

from render_core.raster.rasterizer import FastMeshRasterizer, make_rasterizer, rasterize_meshes_fast

__all__ = ["FastMeshRasterizer", "make_rasterizer", "rasterize_meshes_fast"]
