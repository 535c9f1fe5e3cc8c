"""Synthetic scenes from catalog assets: composition, randomisation, rendering, labels, COCO."""

from render_core.scenes.compose import SceneAsset
from render_core.scenes.config import SceneConfig, SceneConfigError, config_from_dict, load_config
from render_core.scenes.generate import generate_scenes, scene_overlay, scene_seed

__all__ = ["SceneAsset", "SceneConfig", "SceneConfigError", "config_from_dict", "load_config", "generate_scenes", "scene_overlay", "scene_seed"]
