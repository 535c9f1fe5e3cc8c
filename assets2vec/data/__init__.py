"""Multi-asset ray data for the code-conditioned NeRF (nerfstudio's own pipeline is single-scene)."""

from assets2vec.data.rays import RayBatcher, RayTable, build_ray_table, holdout_views

__all__ = ["RayBatcher", "RayTable", "build_ray_table", "holdout_views"]
