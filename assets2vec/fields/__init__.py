"""Fields in nerfstudio's shape: `get_density` (shape code only) then `get_outputs` (adds the texture code)."""
