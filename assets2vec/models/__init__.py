"""Models own the lifecycle (nerfstudio's `models` split): samplers, field, renderers, losses."""
