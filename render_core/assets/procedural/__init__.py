"""Procedural asset families with known generator parameters: the demo library and our ground truth."""

from render_core.assets.procedural.base import Family
from render_core.assets.procedural.chairs import FAMILY as CHAIR
from render_core.assets.procedural.lamps import FAMILY as LAMP
from render_core.assets.procedural.sofas import FAMILY as SOFA
from render_core.assets.procedural.tables import FAMILY as TABLE

FAMILIES: dict[str, Family] = {f.name: f for f in (CHAIR, TABLE, SOFA, LAMP)}

__all__ = ["FAMILIES", "Family"]
