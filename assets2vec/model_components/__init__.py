"""Samplers and losses of the conditional NeRF (nerfstudio's `model_components` split)."""
