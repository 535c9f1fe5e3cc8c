"""Small reusable `nn` parts of the conditional NeRF (nerfstudio's `field_components` split)."""
