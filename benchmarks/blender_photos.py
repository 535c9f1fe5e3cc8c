"""Photos of a LIBRARY's assets rendered by Blender (Cycles, CPU): the test set of the photo-search
benchmark ("which catalog asset is in this photo?").

A second renderer, independent of the project's PyTorch3D one, so the photos do not share its
shading, lights or framing: random camera (azimuth, elevation 0-50 deg, fov 25-60 deg, fill
25-80 %, off-centre), random sky/colour world plus 1-3 lights at 3000-8000 K, and one of three
settings: `studio` (light seamless background), `backdrop` (coloured floor and wall) or `clutter`
(procedural floor/wall and 3-8 primitives that occlude at most ~20 % of the asset).
Every draw depends only on (seed, asset id, j), so reruns and resumed runs give the same photos.

OUT: photos/<id>__<j>.png, masks/<id>__<j>.png (the visible asset, 0/255), photos.jsonl (camera as
c2w and K in rig.py's convention, light rig, timing), artifact.json, report.json, contact_sheet.png.
Resumable: photos already written are skipped. About 3.5 s a photo at 128 px and 8.6 s at 256 px
(32 samples, one CPU thread, OpenImageDenoise).

    .venv/bin/pip install -e .[blender]   # bpy 4.2, ~520 MB
    .venv/bin/python benchmarks/blender_photos.py LIBRARY OUT [--per-asset 3] [--size 256] [--samples 32]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from render_core.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
from render_core.assets.library import open_library
from render_core.assets.mesh import UP_AXES
from render_core.blender import M, M4, denoiser, kelvin_rgb, quiet, rand_colour, require_bpy
from render_core.contact_sheet import contact_sheet
from render_core.rig import intrinsics, project

SETTINGS = ("studio", "backdrop", "clutter")
MAX_OCCLUSION = 0.2


def photo_rng(seed: int, asset_id: str, j: int) -> np.random.Generator:
    """The draw of photo j of an asset depends on nothing else: order and resumption don't matter."""
    h = int.from_bytes(hashlib.sha256(asset_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, h, j]))


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (looks along -Z, +Y up, no roll) in the project's +Y-up world."""
    back = (eye - target) / np.linalg.norm(eye - target)
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(back, right), back, eye
    return c2w


def frame_camera(verts: np.ndarray, az: float, el: float, fov: float, fill: float, off: np.ndarray, size: int):
    """Distance and aim so the projected vertices' bbox spans `fill` of the image (its larger side)
    and its centre lands `off` (fraction of the side, +x right, +y down) from the image centre.
    The camera turns rather than shifting the sensor, so K keeps its centred principal point, as a
    real photo's does. Extent ~ 1/distance and the aim error is nearly linear: a few rounds converge."""
    K = intrinsics(fov, size).astype(np.float64)
    a, e = math.radians(az), math.radians(el)
    direction = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    radius = float(np.linalg.norm(verts, axis=1).max())
    dist, target = radius / math.tan(math.radians(fov) / 2) / fill, np.zeros(3)

    def measure(c2w):
        uv, _ = project(verts, c2w, K)
        lo, hi = uv.min(0), uv.max(0)
        return float((hi - lo).max()) / size, (lo + hi) / 2

    for _ in range(12):
        c2w = look_at(dist * direction, target)
        extent, centre = measure(c2w)
        err = size / 2 + off * size - centre  # pixels the bbox centre still has to move (right, down)
        target = target - err[0] * dist / K[0, 0] * c2w[:3, 0] + err[1] * dist / K[1, 1] * c2w[:3, 1]
        dist = max(dist * extent / fill, radius + 0.05)  # never inside the asset's bounding sphere
    c2w = look_at(dist * direction, target)
    extent, centre = measure(c2w)
    return c2w, K, dist, {"fill_measured": extent, "offset_measured": ((centre - size / 2) / size).tolist()}


class Photographer:
    def __init__(self, args):
        bpy = require_bpy()  # only here: the project installs and runs without Blender
        from mathutils import Matrix, Vector

        self.bpy, self.Matrix, self.Vector, self.args = bpy, Matrix, Vector, args
        self.denoiser = denoiser()

    # -- asset ------------------------------------------------------------------------------------
    def import_asset(self, path: Path, up_axis: str):
        """Import, rotate `up_axis` to up and normalise as mesh.normalize does; (objects, verts in project world)."""
        bpy, ext = self.bpy, path.suffix.lower()
        axes = dict(forward_axis="NEGATIVE_Z", up_axis="Y")  # a Y-up file, as OBJ/glTF and the project assume
        ops = {".obj": bpy.ops.wm.obj_import, ".ply": bpy.ops.wm.ply_import, ".stl": bpy.ops.wm.stl_import}
        if ext in ops:
            ops[ext](filepath=str(path), **axes)
        elif ext in (".glb", ".gltf"):
            bpy.ops.import_scene.gltf(filepath=str(path))  # always converts glTF's +Y up to +Z
        else:
            raise ValueError(f"unsupported file type {ext}")
        objs = [o for o in bpy.context.scene.objects if o.type == "MESH" and len(o.data.vertices)]
        if not objs:
            raise ValueError("import produced no mesh")
        missing = [i.filepath for i in bpy.data.images if i.source == "FILE" and i.size[0] == 0]  # size loads it
        if missing:  # Blender would paint them magenta; the project's loader refuses such assets too
            raise ValueError(f"missing texture(s): {', '.join(missing)}")
        chunks = []
        for o in objs:  # unparent (keeping transforms) so each object's world matrix can be set alone
            mw = o.matrix_world.copy()
            o.parent, o.matrix_world = None, mw
            co = np.empty(len(o.data.vertices) * 3)
            o.data.vertices.foreach_get("co", co)
            chunks.append(co.reshape(-1, 3) @ np.array(mw)[:3, :3].T + np.array(mw)[:3, 3])
        rot = M @ UP_AXES[up_axis].astype(np.float64) @ M.T  # the file's up axis to +Y, in Blender terms
        verts = np.concatenate(chunks) @ rot.T
        lo, hi = verts.min(0), verts.max(0)
        scale = 1.0 / float((hi - lo).max())
        A = np.eye(4)
        A[:3, :3] = scale * rot
        A[:3, 3] = -scale * (lo + hi) / 2
        for o in objs:
            o.matrix_world = self.Matrix(A.tolist()) @ o.matrix_world
            o.pass_index = 1  # the mask is the object-index pass == 1
            if not o.data.materials:  # PLY/STL without a material: the project's neutral grey
                o.data.materials.append(self.material((0.7, 0.7, 0.7), 0.6))
        return objs, ((verts - (lo + hi) / 2) * scale) @ M  # Blender -> project world is M.T

    # -- scene pieces -----------------------------------------------------------------------------
    def material(self, colour, roughness: float, texture: str | None = None, colour2=None, tex_scale: float = 1.0):
        bpy = self.bpy
        mat = bpy.data.materials.new("m")
        mat.use_nodes = True
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
        if texture:
            tex = nt.nodes.new({"noise": "ShaderNodeTexNoise", "checker": "ShaderNodeTexChecker",
                                "brick": "ShaderNodeTexBrick", "voronoi": "ShaderNodeTexVoronoi"}[texture])
            coords = nt.nodes.new("ShaderNodeTexCoord")
            nt.links.new(coords.outputs["Object"], tex.inputs["Vector"])  # metres, not the plane's 0-1
            tex.inputs["Scale"].default_value = tex_scale
            if texture in ("checker", "brick"):
                tex.inputs["Color1"].default_value, tex.inputs["Color2"].default_value = (*colour, 1), (*colour2, 1)
                nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
            else:
                mix = nt.nodes.new("ShaderNodeMixRGB")
                mix.inputs["Color1"].default_value, mix.inputs["Color2"].default_value = (*colour, 1), (*colour2, 1)
                nt.links.new(tex.outputs["Fac" if texture == "noise" else "Distance"], mix.inputs["Fac"])
                nt.links.new(mix.outputs["Color"], bsdf.inputs["Base Color"])
        return mat

    def plane(self, name: str, corners: list, mat):
        mesh = self.bpy.data.meshes.new(name)
        mesh.from_pydata([tuple(float(x) for x in c) for c in corners], [], [(0, 1, 2, 3)])
        mesh.materials.append(mat)
        obj = self.bpy.data.objects.new(name, mesh)
        self.bpy.context.scene.collection.objects.link(obj)
        return obj

    def world(self, rng, setting: str) -> dict:
        """Lighting from a sky model or a colour; in `studio`, camera rays see a plain light grey instead."""
        bpy = self.bpy
        w = bpy.data.worlds.new("w")
        bpy.context.scene.world, w.use_nodes = w, True
        nt = w.node_tree
        bg, out = nt.nodes["Background"], nt.nodes["World Output"]
        if rng.random() < 0.6:
            sky = nt.nodes.new("ShaderNodeTexSky")
            sky.sky_type = str(rng.choice(["NISHITA", "HOSEK_WILKIE"]))
            sun_el, sun_az = rng.uniform(10, 70), rng.uniform(0, 360)
            if sky.sky_type == "NISHITA":
                sky.sun_disc, sky.sun_elevation, sky.sun_rotation = False, math.radians(sun_el), math.radians(sun_az)
                strength = rng.uniform(0.05, 0.2)  # Nishita is in physical units: far brighter than 1
            else:
                e, a = math.radians(sun_el), math.radians(sun_az)
                sky.sun_direction = (math.cos(e) * math.sin(a), math.cos(e) * math.cos(a), math.sin(e))
                sky.turbidity, strength = rng.uniform(2, 6), rng.uniform(0.15, 0.5)
            nt.links.new(sky.outputs["Color"], bg.inputs["Color"])
            info = {"world": sky.sky_type.lower(), "sun_elevation_deg": round(sun_el, 2), "sun_azimuth_deg": round(sun_az, 2)}
        else:
            colour = rand_colour(rng, 0.5, (0.4, 1.0))
            bg.inputs["Color"].default_value = (*colour, 1)
            strength = rng.uniform(0.3, 1.0)
            info = {"world": "colour", "colour": np.round(colour, 4).tolist()}
        bg.inputs["Strength"].default_value = strength
        info["world_strength"] = round(float(strength), 4)
        if setting == "studio":
            grey = rng.uniform(0.8, 1.0) ** 2.2  # drawn in sRGB; the world colour is linear
            plain = nt.nodes.new("ShaderNodeBackground")
            plain.inputs["Color"].default_value = (grey, grey, grey, 1)
            path, mix = nt.nodes.new("ShaderNodeLightPath"), nt.nodes.new("ShaderNodeMixShader")
            nt.links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
            nt.links.new(bg.outputs["Background"], mix.inputs[1])
            nt.links.new(plain.outputs["Background"], mix.inputs[2])
            nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])
            info["background_grey"] = round(float(grey), 4)
        return info

    def lights(self, rng) -> list[dict]:
        bpy, out, n = self.bpy, [], int(rng.integers(1, 4))
        for i in range(n):
            kind = str(rng.choice(["AREA", "SUN"]))
            az, el = rng.uniform(0, 360), rng.uniform(15, 75)
            kelvin = rng.uniform(3000, 8000)
            light = bpy.data.lights.new(f"light{i}", kind)
            light.color = kelvin_rgb(kelvin)
            e, z = math.radians(el), math.radians(az)
            d = np.array([math.cos(e) * math.cos(z), math.cos(e) * math.sin(z), math.sin(e)])  # Blender Z-up
            r = rng.uniform(2.5, 6.0) if kind == "AREA" else 10.0
            # Irradiance at the asset ~1-3.5 W/m^2 in all (a sun's strength; an area light's power/(pi r^2)),
            # shared between the lights so that three do not blow out the Standard view transform.
            irradiance = rng.uniform(1.0, 3.5) / math.sqrt(n)
            if kind == "AREA":
                light.size, light.energy = rng.uniform(0.5, 3.0), irradiance * math.pi * r * r
            else:
                light.energy, light.angle = irradiance, math.radians(rng.uniform(0.5, 10))
            obj = bpy.data.objects.new(f"light{i}", light)
            bpy.context.scene.collection.objects.link(obj)
            obj.location = tuple(d * r)
            obj.rotation_euler = self.Vector(tuple(-d)).to_track_quat("-Z", "Y").to_euler()
            obj.visible_camera = False
            out.append({"type": kind.lower(), "azimuth_deg": round(az, 2), "elevation_deg": round(el, 2), "kelvin": round(kelvin),
                        "rgb": [round(c, 4) for c in light.color], "energy": round(light.energy, 2)})
        return out

    def room(self, rng, setting: str, floor_z: float, cam_xy: np.ndarray, reach: float) -> dict:
        """Floor at the asset's lowest point and, for backdrop/clutter, a wall behind it facing the camera."""
        h = cam_xy / max(np.linalg.norm(cam_xy), 1e-9)  # horizontal direction towards the camera
        side = np.array([-h[1], h[0]])

        def surface():
            c1, c2 = rand_colour(rng, 0.7, (0.15, 0.9)), rand_colour(rng, 0.7, (0.15, 0.9))
            if setting == "backdrop":
                return self.material(c1, rng.uniform(0.3, 1.0)), {"colour": np.round(c1, 4).tolist()}
            tex = str(rng.choice(["noise", "checker", "brick", "voronoi"]))
            scale = float(rng.uniform(0.5, 4.0))
            return self.material(c1, rng.uniform(0.3, 1.0), tex, c2, scale), {"texture": tex, "scale": round(scale, 3)}

        big = 2000.0  # its far edge then sits on the horizon: a 60 m catcher's edge drew a grey line there
        floor = [(-big, -big, floor_z), (big, -big, floor_z), (big, big, floor_z), (-big, big, floor_z)]
        if setting == "studio":
            if rng.random() < 0.5:
                return {"floor": "none (floating)"}
            self.plane("catcher", floor, self.material((0.8,) * 3, 1.0)).is_shadow_catcher = True
            return {"floor": "shadow catcher"}
        fmat, finfo = surface()
        self.plane("floor", floor, fmat)
        wmat, winfo = surface()
        back = -h * (reach + rng.uniform(0.3, 2.5))  # behind the asset (and the distractors)
        a, b = back + side * big, back - side * big
        self.plane("wall", [(*a, floor_z), (*b, floor_z), (*b, floor_z + 30), (*a, floor_z + 30)], wmat)
        return {"floor": finfo, "wall": winfo, "wall_distance": round(float(np.linalg.norm(back)), 3)}

    @staticmethod
    def spot(rng, h, r_asset: float, s: float, angles: tuple[float, float]) -> np.ndarray:
        """A floor position clear of the asset at an angle (deg) from the direction to the camera."""
        ang = math.radians(rng.uniform(*angles))
        d = np.array([h[0] * math.cos(ang) - h[1] * math.sin(ang), h[0] * math.sin(ang) + h[1] * math.cos(ang)])
        return d * (r_asset + s + rng.uniform(0.1, 1.5))

    def distractor(self, rng, floor_z, h, r_asset):
        """One primitive on the floor beside or behind the asset (never towards the camera)."""
        ops, kind, s = self.bpy.ops.mesh, str(rng.choice(["cube", "sphere", "cylinder", "torus"])), rng.uniform(0.12, 0.45)
        xy = self.spot(rng, h, r_asset, s, (70, 290))  # 0 deg = towards the camera
        if kind == "cube":
            ops.primitive_cube_add(size=2 * s, location=(*xy, floor_z + s))
        elif kind == "sphere":
            ops.primitive_uv_sphere_add(radius=s, location=(*xy, floor_z + s))
        elif kind == "cylinder":
            ops.primitive_cylinder_add(radius=s * 0.6, depth=2 * s, location=(*xy, floor_z + s))
        else:
            ops.primitive_torus_add(major_radius=s, minor_radius=s * 0.3, location=(*xy, floor_z + s * 0.3))
        obj = self.bpy.context.active_object
        obj.rotation_euler[2] = rng.uniform(0, 2 * math.pi)
        obj.data.materials.append(self.material(rand_colour(rng, 0.9, (0.2, 0.95)), rng.uniform(0.1, 0.9)))
        if kind in ("sphere", "torus", "cylinder"):
            obj.data.shade_smooth()
        self.distractors[obj.name] = {"kind": kind, "size": s, "moves": 0}
        return float(np.linalg.norm(xy)) + s

    def visible_fraction(self, cam_w: np.ndarray, K: np.ndarray, asset: list, box: np.ndarray, n: int = 40):
        """Ray-cast an n x n grid over the asset's projected bbox `box` (u0, v0, u1, v1): of the rays
        that meet the asset (tested on its objects alone), the fraction whose first hit in the scene
        is the asset. Returns (fraction, {distractor: rays it blocks})."""
        bpy, V = self.bpy, self.Vector
        bpy.context.view_layer.update()
        dg, scene = bpy.context.evaluated_depsgraph_get(), bpy.context.scene
        local = [(o, o.matrix_world.inverted()) for o in asset]
        names = {o.name for o in asset}
        hit, seen, blockers = 0, 0, {}
        origin = V(cam_w[:3, 3].tolist())
        for t in box[1] + (np.arange(n) + 0.5) * (box[3] - box[1]) / n:
            for u in box[0] + (np.arange(n) + 0.5) * (box[2] - box[0]) / n:
                d = cam_w[:3, :3] @ np.array([(u - K[0, 2]) / K[0, 0], -(t - K[1, 2]) / K[1, 1], -1.0])
                d = V((d / np.linalg.norm(d)).tolist())
                if not any(o.ray_cast(mi @ origin, mi.to_3x3() @ d, depsgraph=dg)[0] for o, mi in local):
                    continue
                hit += 1
                first = scene.ray_cast(dg, origin, d)[4]
                if first is not None and first.name in names:
                    seen += 1
                elif first is not None:
                    blockers[first.name] = blockers.get(first.name, 0) + 1
        return (seen / hit if hit else 1.0), blockers

    # -- one photo --------------------------------------------------------------------------------
    def photo(self, path: Path, up_axis: str, rng, setting: str, photo_png: Path, mask_png: Path) -> dict:
        bpy, a = self.bpy, self.args
        bpy.ops.wm.read_factory_settings(use_empty=True)  # nothing leaks from the previous photo
        asset, verts = self.import_asset(path, up_axis)
        az, el, fov = rng.uniform(0, 360), rng.uniform(0, 50), rng.uniform(25, 60)
        fill = rng.uniform(0.25, 0.8)
        # Up to 15 % off-centre, but never pushed out of the frame: a cut-off asset is another test.
        off = np.clip(rng.uniform(-0.15, 0.15, 2), -max(0.0, (1 - fill) / 2 - 0.02), max(0.0, (1 - fill) / 2 - 0.02))
        c2w, K, dist, got = frame_camera(verts, az, el, fov, fill, off, a.size)
        cam_w = M4 @ c2w  # both OpenGL cameras (-Z forward, +Y up); only the world differs
        scene = bpy.context.scene
        cam = bpy.data.cameras.new("cam")
        cam.sensor_fit, cam.angle_y, cam.clip_start, cam.clip_end = "VERTICAL", math.radians(fov), 0.01, 500.0
        cam_obj = bpy.data.objects.new("cam", cam)
        scene.collection.objects.link(cam_obj)
        cam_obj.matrix_world = self.Matrix(cam_w.tolist())
        scene.camera = cam_obj

        info = {"setting": setting, **self.world(rng, setting)}
        info["lights"] = self.lights(rng)
        floor_z = float(verts[:, 1].min())  # the asset's lowest point; project +Y is Blender +Z
        r_asset = float(np.linalg.norm(verts[:, [0, 2]], axis=1).max())
        self.distractors, reach = {}, r_asset
        if setting == "clutter":
            h = cam_w[:2, 3] / max(np.linalg.norm(cam_w[:2, 3]), 1e-9)  # horizontal, towards the camera
            for _ in range(int(rng.integers(3, 9))):
                reach = max(reach, self.distractor(rng, floor_z, h, r_asset))
        visible = 1.0
        if self.distractors:  # move the worst occluder behind the asset (twice at most, then drop it)
            uv, _ = project(verts, c2w, K)  # until at most MAX_OCCLUSION of the asset is hidden
            box = np.concatenate([uv.min(0), uv.max(0)])
            while True:
                visible, blockers = self.visible_fraction(cam_w, K, asset, box)
                if 1 - visible <= MAX_OCCLUSION or not blockers:
                    break
                worst = max((b for b in blockers if b in self.distractors), key=blockers.get, default=None)
                if worst is None:  # hidden by something that is not a distractor: nothing to move
                    break
                d = self.distractors[worst]
                if d["moves"] < 2:
                    d["moves"] += 1
                    xy = self.spot(rng, h, r_asset, d["size"], (120, 240))
                    bpy.data.objects[worst].location[:2] = xy.tolist()
                    reach = max(reach, float(np.linalg.norm(xy)) + d["size"])
                else:
                    bpy.data.objects.remove(bpy.data.objects[worst])
                    del self.distractors[worst]
            info["distractors"] = sorted(d["kind"] for d in self.distractors.values())
        info["room"] = self.room(rng, setting, floor_z, cam_w[:2, 3], reach)  # the wall goes behind them all
        info["visible_fraction_raycast"] = round(visible, 4)

        r = scene.render
        r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage = "CYCLES", a.size, a.size, 100
        r.film_transparent, r.image_settings.file_format, r.image_settings.color_mode = False, "PNG", "RGB"
        if a.threads:
            r.threads_mode, r.threads = "FIXED", a.threads
        cy = scene.cycles
        cy.device, cy.samples, cy.seed, cy.max_bounces = "CPU", a.samples, int(rng.integers(0, 2**31 - 1)), 6
        cy.use_denoising = self.denoiser != "none"
        if cy.use_denoising:
            cy.denoiser = self.denoiser
        scene.view_settings.view_transform, scene.view_settings.look = "Standard", "None"  # plain sRGB
        scene.view_settings.exposure, scene.view_settings.gamma = 0.0, 1.0

        # Mask: the object-index pass through the compositor's ID Mask into a File Output node
        # (a Viewer node's image stays empty when bpy renders in background mode).
        scene.view_layers[0].use_pass_object_index = True
        scene.use_nodes = True
        nt = scene.node_tree
        nt.nodes.clear()
        kinds = ("CompositorNodeRLayers", "CompositorNodeComposite", "CompositorNodeIDMask", "CompositorNodeOutputFile")
        rl, comp, idm, fo = (nt.nodes.new(t) for t in kinds)
        idm.index, idm.use_antialiasing = 1, False
        tmp_dir = photo_png.parent / f".{photo_png.stem}.tmp"
        fo.base_path, fo.file_slots[0].path = str(tmp_dir), "mask"
        fo.format.file_format, fo.format.color_mode, fo.format.color_depth = "PNG", "BW", "8"
        nt.links.new(rl.outputs["Image"], comp.inputs["Image"])
        nt.links.new(rl.outputs["IndexOB"], idm.inputs["ID value"])
        nt.links.new(idm.outputs["Alpha"], fo.inputs[0])

        t0 = time.perf_counter()
        bpy.ops.render.render()
        seconds = time.perf_counter() - t0
        mask_file = next(tmp_dir.glob("mask*.png"))  # named with the frame number
        mask = np.asarray(Image.open(mask_file).convert("L")) > 127
        tmp = tmp_dir / "photo.png"
        bpy.data.images["Render Result"].save_render(str(tmp))  # applies the Standard view transform
        atomic_write_bytes(mask_png, _png(mask.astype(np.uint8) * 255))
        os.replace(tmp, photo_png)  # the photo last: its presence marks the photo done
        mask_file.unlink()
        tmp_dir.rmdir()
        return {"setting": setting, "azimuth_deg": az, "elevation_deg": el, "fov_deg": fov, "distance": dist, "fill": fill,
                "offset_xy": off.tolist(), **got, "c2w": c2w.tolist(), "intrinsics": K.tolist(), "light": info,
                "samples": a.samples, "denoiser": self.denoiser, "view_transform": "Standard",
                "cycles_seed": cy.seed, "mask_fraction": float(mask.mean()), "seconds": seconds}


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library", help="a generated LIBRARY or a plain folder of meshes")
    ap.add_argument("out", help="photo folder to create or resume")
    ap.add_argument("--per-asset", type=int, default=3)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma list, cycled over an asset's photos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="Cycles CPU threads (0: all cores)")
    ap.add_argument("--up-axis", default=None, choices=sorted(UP_AXES), help="default: the library header's, else y")
    ap.add_argument("--ids", default=None, help="comma list of asset ids")
    ap.add_argument("--limit", type=int, default=None, help="first N assets only")
    args = ap.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not settings or any(s not in SETTINGS for s in settings):
        ap.error(f"--settings must be a comma list of {', '.join(SETTINGS)}")

    lib = open_library(args.library)
    up_axis = args.up_axis or (lib.header or {}).get("up_axis", "y")
    records = lib.records
    if args.ids:
        wanted = set(args.ids.split(","))
        records = [r for r in records if r.id in wanted]
    records = records[: args.limit] if args.limit else records
    out = Path(args.out)
    for sub in ("photos", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    pg = Photographer(args)
    header = {"kind": "photos", "producer": "benchmarks/blender_photos.py", "seed": args.seed, "library": str(Path(args.library).resolve()),
              "renderer": f"blender {pg.bpy.app.version_string} cycles", "settings": settings, "up_axis": up_axis,
              "size": args.size, "samples": args.samples, "denoiser": pg.denoiser, "view_transform": "Standard"}
    if (out / "artifact.json").exists():  # resuming with other draws would mix two benchmarks
        old = json.loads((out / "artifact.json").read_text())
        diff = [k for k in ("kind", "seed", "settings", "size", "up_axis") if old.get(k) != header[k]]
        if diff:
            sys.exit(f"{out}: was made with other {', '.join(diff)}; use a new folder")
    atomic_write_json(out / "artifact.json", header)

    done: dict[tuple[str, int], dict] = {}
    if (out / "photos.jsonl").exists():
        for line in (out / "photos.jsonl").read_text().splitlines():
            rec = json.loads(line)
            done[(rec["asset_id"], rec["j"])] = rec
    jobs = [(r, j) for r in records for j in range(args.per_asset)]
    rendered = skipped = 0
    failures: list[dict] = []
    failed_ids: set[str] = set()
    t_start = time.perf_counter()
    for r, j in tqdm(jobs, desc="photos", unit="photo"):
        name = f"{r.id}__{j}"
        photo_png, mask_png = out / "photos" / f"{name}.png", out / "masks" / f"{name}.png"
        if photo_png.exists() and (r.id, j) in done:  # a PNG without its record is redone
            skipped += 1
            continue
        if r.id in failed_ids:
            continue
        try:
            with quiet():
                rec = pg.photo(lib.path_of(r), up_axis, photo_rng(args.seed, r.id, j), settings[j % len(settings)], photo_png, mask_png)
        except Exception as exc:  # one bad asset must not stop the batch
            shutil.rmtree(photo_png.parent / f".{photo_png.stem}.tmp", ignore_errors=True)
            failed_ids.add(r.id)
            failures.append({"asset_id": r.id, "path": r.path, "error": f"{type(exc).__name__}: {exc}"})
            print(f"failed: {r.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        done[(r.id, j)] = {"asset_id": r.id, "j": j, "category": r.category, "seed": args.seed, **rec}
        atomic_write_text(out / "photos.jsonl", "".join(json.dumps(v) + "\n" for v in done.values()))
        rendered += 1
    seconds = time.perf_counter() - t_start

    atomic_write_json(out / "report.json", {"rendered": rendered, "skipped": skipped, "failed": len(failures), "failures": failures})
    firsts = [v for v in done.values() if (out / "photos" / f"{v['asset_id']}__{v['j']}.png").exists()][:48]
    if firsts:
        imgs = [np.asarray(Image.open(out / "photos" / f"{v['asset_id']}__{v['j']}.png").convert("RGB")) for v in firsts]
        sheet = contact_sheet(imgs, [f"{v['asset_id']}\n{v['j']} {v['setting']}" for v in firsts], columns=min(8, len(imgs)))
        atomic_write_bytes(out / "contact_sheet.png", _png(sheet))
    print(json.dumps({"benchmark": "blender_photos", "photos_rendered": rendered, "skipped": skipped, "failed": len(failures),
                      "seconds": round(seconds, 2), "seconds_per_photo": round(seconds / rendered, 3) if rendered else None,
                      "size": args.size, "samples": args.samples, "denoiser": pg.denoiser, "out": str(out)}))


if __name__ == "__main__":
    main()
