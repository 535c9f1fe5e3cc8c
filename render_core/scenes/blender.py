"""Scenes through Blender (`scenes generate --renderer blender`): the same composed `Scene`, settled
under gravity, path-traced by Cycles, with labels from Cycles' own passes.

1. Physics: Blender's rigid-body world (Bullet) drops every object and clutter item from a little above
   where it was placed onto the floor (clutter at a random orientation); convex-hull collision shapes
   keep them from interpenetrating. The settled poses replace the composed ones in the `Scene`, so the
   record, the labels and the rasterizer's cross-check all describe what was rendered (as BlenderProc
   and Kubric settle objects before rendering).
2. Rendering: Cycles on the CPU, denoised; materials from each asset's own texture (decoded from sRGB)
   or colours (linear), shading in linear light and the image encoded as sRGB (the Standard view
   transform), like a camera. Light: Blender's sky model or a plain colour world, plus area and sun
   lights at random colour temperatures; random exposure and Gaussian sensor noise.
3. Labels from the renderer's passes: instance and semantic maps from the object-index pass, depth
   (z along the view axis) from the depth pass. The rasterizer renders the same settled scene from
   the same camera for the amodal silhouettes (the visible fraction's denominator) and as a check:
   each scene's record says how far the two renderers' masks and boxes are apart.

Determinism: the physics, the lights, the exposure and the noise come from the scene's seed; Cycles
samples with a seed from it too, so a scene re-rendered gives the same labels and the same pixels
up to Cycles' own thread-order noise after denoising.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from render_core.assets.mesh import DEFAULT_GREY, MeshData
from render_core.blender import M, M4, denoiser, kelvin_rgb, quiet, rand_colour, require_bpy
from render_core.colour import srgb_to_linear
from render_core.rig import intrinsics
from render_core.scenes.compose import CLUTTER, FLOOR, WALL, Layer, Scene
from render_core.scenes.config import SceneConfig
from render_core.scenes.render import SceneRenderer

STUFF_INDEX = {FLOOR: 30001, WALL: 30002}  # object-index pass values of the floor and walls (objects: their instance)
FELL = -0.25  # metres: an object whose top ends below this fell off the floor while settling


def _mesh_object(bpy, name: str, verts_b: np.ndarray, faces: np.ndarray):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts_b.tolist(), [], faces.tolist())
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


class BlenderSceneRenderer:
    """`render(scene)` gives what `SceneRenderer.render` gives (rgb, depth, instance, semantic, amodal,
    c2w, K), plus "blender" (what was drawn for the render) and "label_check" (against the rasterizer);
    with physics on, `scene` is settled in place first."""

    def __init__(self, cfg: SceneConfig):
        self.bpy = require_bpy()
        from mathutils import Matrix, Vector

        self.Matrix, self.Vector = Matrix, Vector
        self.cfg, self.b = cfg, cfg.blender
        self.raster = SceneRenderer(cfg.image_size, 1, "cpu")
        self.denoiser = denoiser() if self.b.denoise else "none"

    def render(self, scene: Scene) -> dict:
        rng = np.random.default_rng(np.random.SeedSequence([scene.seed, 0x626C656E]))  # Blender's own draws
        with quiet():
            fell = self.settle(scene, rng) if self.b.physics else []
            maps = self._render(scene, rng)
        raster = self.raster.render(scene)
        maps["amodal"] = raster["amodal"]
        maps["label_check"] = label_check(maps["instance"], raster["instance"], [o.instance for o in scene.objects])
        maps["blender"]["fell"] = fell  # no timings: a scene's record is a function of its seed
        return maps

    # -- physics ------------------------------------------------------------------------------------
    def settle(self, scene: Scene, rng: np.random.Generator) -> list[dict]:
        """Drop every object onto the floor and let it come to rest; the scene's objects and layers take
        the settled poses. Returns the objects that fell off the floor (removed from the scene)."""
        bpy = self.bpy
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bsc = bpy.context.scene
        bpy.ops.rigidbody.world_add()
        world = bsc.rigidbody_world
        frames = max(2, int(round(self.b.settle_seconds * bsc.render.fps)))
        world.point_cache.frame_start, world.point_cache.frame_end = 1, frames
        world.substeps_per_frame, world.solver_iterations = 10, 20
        bsc.frame_start, bsc.frame_end = 1, frames
        half = scene.floor_size / 2
        # The floor and walls as thick passive boxes (a plane's thin hull lets fast objects through).
        statics = [((-half, -half, -0.5), (half, half, 0.0))]
        walls = sum(layer.semantic == WALL for layer in scene.layers)
        if walls >= 1:  # behind the objects: the project's -Z is Blender's +Y
            statics.append(((-half, half, 0.0), (half, half + 0.5, 10.0)))
        if walls >= 2:  # to their left
            statics.append(((-half - 0.5, -half, 0.0), (-half, half, 10.0)))
        for k, (lo, hi) in enumerate(statics):
            self._rigid(self._box(f"static{k}", lo, hi), "PASSIVE", "BOX")
        bodies = []
        for o in scene.objects:
            # Blender puts a body's centre of mass at its origin: the origin goes to the mesh's box centre.
            verts = o.mesh.verts.astype(np.float64)
            centre = (verts.min(0) + verts.max(0)) / 2
            local = (verts - centre) @ M.T  # Blender axes
            spot = M @ (np.array([o.footprint.x, 0.0, o.footprint.z]) - centre)  # the footprint's point, body frame
            obj = _mesh_object(bpy, f"o{o.instance}", local, o.mesh.faces)
            if o.semantic == CLUTTER:  # a dropped box or cylinder lands as it happens to, not upright
                obj.rotation_euler = tuple(float(a) for a in rng.uniform(0, 2 * math.pi, 3))
            turned = local @ np.array(obj.matrix_basis)[:3, :3].T
            lift = float(rng.uniform(*self.b.drop_height))
            obj.location = tuple(M @ centre * np.array([1.0, 1.0, 0.0]) + np.array([0.0, 0.0, lift + 0.002 - turned[:, 2].min()]))
            self._rigid(obj, "ACTIVE", "CONVEX_HULL")
            bodies.append((o, obj, local, spot))
        for f in range(1, frames + 1):
            bsc.frame_set(f)
        fell, kept = [], []
        for o, obj, local, spot in bodies:
            W = np.array(obj.matrix_world)
            verts = ((local @ W[:3, :3].T) + W[:3, 3]) @ M  # settled, back in project axes
            if verts[:, 1].max() < FELL:
                fell.append({"asset_id": o.asset.id if o.asset else None, "instance": o.instance,
                             "reason": "fell off the floor while settling"})
                continue
            at = M.T @ (W[:3, :3] @ spot + W[:3, 3])  # where the footprint's point went
            # The project's yaw turns about +Y (rot_y), which is Blender's turn about +Z: the same angle.
            turn = math.degrees(math.atan2(W[1, 0], W[0, 0]))
            o.mesh = o.mesh.with_verts(verts.astype(np.float32))
            o.footprint = replace(o.footprint, x=float(at[0]), z=float(at[2]), yaw_deg=float((o.footprint.yaw_deg + turn) % 360.0))
            kept.append(o)
        scene.objects = kept
        scene.dropped.extend(fell)
        stuff = [layer for layer in scene.layers if not layer.instance]
        scene.layers = [Layer(o.mesh, o.semantic, o.instance) for o in kept] + stuff
        return fell

    def _box(self, name: str, lo, hi):
        """A box from corner `lo` to `hi`, its origin at its centre (a BOX collision shape is centred on the origin)."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        half = (hi - lo) / 2
        verts = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
        faces = np.array([[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]])
        obj = _mesh_object(self.bpy, name, verts, faces)
        obj.location = tuple((lo + hi) / 2)
        return obj

    def _rigid(self, obj, kind: str, shape: str) -> None:
        bpy = self.bpy
        bpy.context.view_layer.objects.active = obj
        obj.select_set(True)
        bpy.ops.rigidbody.object_add(type=kind)
        obj.select_set(False)
        rb = obj.rigid_body
        rb.collision_shape, rb.friction, rb.restitution = shape, 0.8, 0.0
        rb.use_margin, rb.collision_margin = True, 0.001  # Bullet's default 4 cm would leave objects floating
        rb.linear_damping, rb.angular_damping = 0.4, 0.6  # a sphere comes to rest instead of rolling away

    # -- rendering ----------------------------------------------------------------------------------
    def _render(self, scene: Scene, rng: np.random.Generator) -> dict:
        bpy, b, size = self.bpy, self.b, self.cfg.image_size
        bpy.ops.wm.read_factory_settings(use_empty=True)  # nothing of the physics or the last scene remains
        bsc = bpy.context.scene
        for k, layer in enumerate(scene.layers):
            index = layer.instance if layer.instance else STUFF_INDEX[layer.semantic]
            obj = _mesh_object(bpy, f"layer{k}", layer.mesh.verts.astype(np.float64) @ M.T, layer.mesh.faces)
            obj.pass_index = index
            obj.data.materials.append(self._material(layer.mesh, f"m{k}", float(rng.uniform(0.35, 0.9)), obj.data,
                                                     see_through_back=layer.cull_backfaces))
        _, c2w = self.raster.cameras(scene)  # the rasterizer's camera, so both renderers see the same view
        cam = bpy.data.cameras.new("cam")
        cam.sensor_fit, cam.angle_y, cam.clip_start, cam.clip_end = "VERTICAL", math.radians(scene.camera.fov_deg), 0.05, 200.0
        cam_obj = bpy.data.objects.new("cam", cam)
        bsc.collection.objects.link(cam_obj)
        cam_obj.matrix_world = self.Matrix((M4 @ c2w.astype(np.float64)).tolist())
        bsc.camera = cam_obj
        info = {"world": self._world(rng, scene.background), "lights": self._lights(rng, scene)}
        exposure = float(rng.uniform(*b.exposure))
        noise = float(rng.uniform(*b.noise))
        info.update(exposure=round(exposure, 4), noise=round(noise, 5), samples=b.samples, denoiser=self.denoiser,
                    cycles_seed=int(rng.integers(0, 2**31 - 1)), renderer=f"blender {bpy.app.version_string} cycles")
        r = bsc.render
        r.engine, r.resolution_x, r.resolution_y, r.resolution_percentage = "CYCLES", size, size, 100
        r.film_transparent, r.image_settings.file_format, r.image_settings.color_mode = False, "PNG", "RGB"
        if b.threads:
            r.threads_mode, r.threads = "FIXED", b.threads
        cy = bsc.cycles
        cy.device, cy.samples, cy.seed, cy.max_bounces = "CPU", b.samples, info["cycles_seed"], 6
        cy.use_denoising = self.denoiser != "none"
        if cy.use_denoising:
            cy.denoiser = self.denoiser
        bsc.view_settings.view_transform, bsc.view_settings.look = "Standard", "None"  # plain sRGB
        bsc.view_settings.exposure, bsc.view_settings.gamma = exposure, 1.0
        rgb, index, depth = self._passes(bsc)
        noisy = rgb.astype(np.float64) / 255.0 + rng.normal(0.0, noise, rgb.shape)
        rgb = (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)
        return {"rgb": rgb, **labels_from_passes(index, depth, scene), "c2w": c2w, "K": intrinsics(scene.camera.fov_deg, size),
                "blender": info}

    def _passes(self, bsc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb (H,W,3) uint8 sRGB, object index (H,W) float, view-axis depth (H,W) float), top row first."""
        bpy = self.bpy
        vl = bsc.view_layers[0]
        vl.use_pass_z, vl.use_pass_object_index = True, True
        bsc.use_nodes = True
        nt = bsc.node_tree
        nt.nodes.clear()
        rl, comp, fo = (nt.nodes.new(t) for t in ("CompositorNodeRLayers", "CompositorNodeComposite", "CompositorNodeOutputFile"))
        tmp = Path(tempfile.mkdtemp(prefix="a2v_blender_"))
        try:
            # float EXR: the index and depth come back exact (a Viewer node stays empty in background mode)
            fo.base_path, fo.format.file_format, fo.format.color_depth = str(tmp), "OPEN_EXR", "32"
            fo.file_slots[0].path = "index"
            fo.file_slots.new("depth")
            nt.links.new(rl.outputs["Image"], comp.inputs["Image"])
            nt.links.new(rl.outputs["IndexOB"], fo.inputs[0])
            nt.links.new(rl.outputs["Depth"], fo.inputs[1])
            bpy.ops.render.render()
            bpy.data.images["Render Result"].save_render(str(tmp / "rgb.png"))  # through the Standard view transform
            rgb = np.asarray(Image.open(tmp / "rgb.png").convert("RGB"))
            out = []
            for name in ("index", "depth"):
                img = bpy.data.images.load(str(next(tmp.glob(f"{name}*.exr"))))
                a = np.array(img.pixels[:], dtype=np.float32).reshape(img.size[1], img.size[0], -1)[::-1, :, 0]
                bpy.data.images.remove(img)
                out.append(np.ascontiguousarray(a))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return rgb, out[0], out[1]

    def _material(self, mesh: MeshData, name: str, roughness: float, data, see_through_back: bool = False):
        """Principled BSDF with the mesh's own colours: its texture (an sRGB image, decoded by Blender as
        a camera's file would be) or its vertex colours (linear), else the project's neutral grey.
        `see_through_back`: camera rays pass through the back face (walls: the rasterizer culls their back
        faces, so a camera outside the room looks in); light still stops there, so the room stays a room."""
        bpy = self.bpy
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]
        bsdf.inputs["Roughness"].default_value = roughness
        if mesh.texture is not None:
            tex = mesh.texture
            h, w = tex.image.shape[:2]
            img = bpy.data.images.new(name, w, h, alpha=False)
            img.colorspace_settings.name = "sRGB"
            rgba = np.concatenate([tex.image[::-1], np.ones((h, w, 1), np.float32)], -1)  # Blender's rows start at the bottom
            img.pixels.foreach_set(np.ascontiguousarray(rgba, np.float32).ravel())
            uv = data.uv_layers.new(name="uv")
            uv.data.foreach_set("uv", tex.verts_uvs[tex.faces_uvs].astype(np.float32).ravel())  # loops follow the faces
            node = nt.nodes.new("ShaderNodeTexImage")
            node.image, node.extension = img, "EXTEND"
            nt.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
        else:
            colours = mesh.vertex_colors if mesh.vertex_colors is not None else np.broadcast_to(np.float32(DEFAULT_GREY), mesh.verts.shape)
            linear = colours if (mesh.vertex_colors_linear and mesh.vertex_colors is not None) else srgb_to_linear(np.asarray(colours, np.float32))
            attr = data.color_attributes.new("colour", "FLOAT_COLOR", "POINT")
            rgba = np.concatenate([np.asarray(linear, np.float32), np.ones((len(linear), 1), np.float32)], -1)
            attr.data.foreach_set("color", rgba.ravel())
            node = nt.nodes.new("ShaderNodeAttribute")
            node.attribute_name = "colour"
            nt.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
        if see_through_back:
            path, both = nt.nodes.new("ShaderNodeLightPath"), nt.nodes.new("ShaderNodeMath")
            both.operation = "MULTIPLY"
            nt.links.new(path.outputs["Is Camera Ray"], both.inputs[0])
            nt.links.new(nt.nodes.new("ShaderNodeNewGeometry").outputs["Backfacing"], both.inputs[1])
            clear, mix = nt.nodes.new("ShaderNodeBsdfTransparent"), nt.nodes.new("ShaderNodeMixShader")
            nt.links.new(both.outputs["Value"], mix.inputs["Fac"])
            nt.links.new(bsdf.outputs["BSDF"], mix.inputs[1])
            nt.links.new(clear.outputs["BSDF"], mix.inputs[2])
            nt.links.new(mix.outputs["Shader"], nt.nodes["Material Output"].inputs["Surface"])
        return mat

    def _world(self, rng, backdrop) -> dict:
        """Blender's sky model (sun from a random direction) or a plain colour: the light through the room's
        open sides. Camera rays that leave the room see the scene's background colour, as the rasterizer
        shows it (the sky model is black below its horizon)."""
        bpy = self.bpy
        w = bpy.data.worlds.new("w")
        bpy.context.scene.world, w.use_nodes = w, True
        nt = w.node_tree
        bg, out = nt.nodes["Background"], nt.nodes["World Output"]
        plain = nt.nodes.new("ShaderNodeBackground")
        plain.inputs["Color"].default_value = (*srgb_to_linear(np.asarray(backdrop, np.float32)).tolist(), 1.0)
        path, mix = nt.nodes.new("ShaderNodeLightPath"), nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        nt.links.new(bg.outputs["Background"], mix.inputs[1])
        nt.links.new(plain.outputs["Background"], mix.inputs[2])
        nt.links.new(mix.outputs["Shader"], out.inputs["Surface"])
        if rng.random() < self.b.sky:
            sky = nt.nodes.new("ShaderNodeTexSky")
            sky.sky_type = "NISHITA"
            sun_el, sun_az = rng.uniform(10, 70), rng.uniform(0, 360)
            sky.sun_disc, sky.sun_elevation, sky.sun_rotation = False, math.radians(sun_el), math.radians(sun_az)
            strength = rng.uniform(0.05, 0.2)  # Nishita is in physical units: far brighter than 1
            nt.links.new(sky.outputs["Color"], bg.inputs["Color"])
            info = {"kind": "sky", "sun_elevation_deg": round(sun_el, 2), "sun_azimuth_deg": round(sun_az, 2)}
        else:
            colour = rand_colour(rng, 0.4, (0.5, 1.0))
            bg.inputs["Color"].default_value = (*colour, 1)
            strength = rng.uniform(0.3, 0.9)
            info = {"kind": "colour", "colour": np.round(colour, 4).tolist()}
        bg.inputs["Strength"].default_value = strength
        info["strength"] = round(float(strength), 4)
        return info

    def _lights(self, rng, scene: Scene) -> list[dict]:
        """Area and sun lights above the room at random colour temperatures, their irradiance shared between them."""
        bpy, out = self.bpy, []
        n = int(rng.integers(int(self.b.sun_lights[0]), int(self.b.sun_lights[1]) + 1))
        centre = np.mean([[o.footprint.x, -o.footprint.z] for o in scene.objects], 0) if scene.objects else np.zeros(2)
        for i in range(n):
            kind = str(rng.choice(["AREA", "SUN"]))
            az, el, kelvin = rng.uniform(0, 360), rng.uniform(25, 80), rng.uniform(*self.b.kelvin)
            light = bpy.data.lights.new(f"light{i}", kind)
            light.color = kelvin_rgb(kelvin)
            e, z = math.radians(el), math.radians(az)
            d = np.array([math.cos(e) * math.cos(z), math.cos(e) * math.sin(z), math.sin(e)])  # Blender Z-up
            r = rng.uniform(2.5, 5.0) if kind == "AREA" else 10.0
            irradiance = rng.uniform(1.5, 4.0) / math.sqrt(n)  # W/m^2 at the objects, as the photo benchmark's
            if kind == "AREA":
                light.size, light.energy = rng.uniform(0.5, 2.5), irradiance * math.pi * r * r
            else:
                light.energy, light.angle = irradiance, math.radians(rng.uniform(0.5, 10))
            obj = bpy.data.objects.new(f"light{i}", light)
            bpy.context.scene.collection.objects.link(obj)
            obj.location = tuple(np.array([centre[0], centre[1], 0.0]) + d * r)
            obj.rotation_euler = self.Vector(tuple(-d)).to_track_quat("-Z", "Y").to_euler()
            obj.visible_camera = False
            out.append({"type": kind.lower(), "azimuth_deg": round(az, 2), "elevation_deg": round(el, 2), "kelvin": round(kelvin),
                        "energy": round(float(light.energy), 3)})
        return out


def labels_from_passes(index: np.ndarray, depth: np.ndarray, scene: Scene) -> dict:
    """Instance, semantic and depth maps from Cycles' object-index and depth passes (H, W)."""
    idx = np.rint(index).astype(np.int64)
    semantic_of = {o.instance: o.semantic for o in scene.objects}
    semantic_of.update({v: k for k, v in STUFF_INDEX.items()})
    instance = np.where(np.isin(idx, list(semantic_of)) & (idx < min(STUFF_INDEX.values())), idx, 0)
    lut = np.zeros(max(STUFF_INDEX.values()) + 1, np.int64)
    for k, v in semantic_of.items():
        lut[k] = v
    semantic = lut[np.clip(idx, 0, len(lut) - 1)]
    hit = idx > 0
    return {"instance": instance.astype(np.uint16), "semantic": semantic.astype(np.uint16),
            "depth": np.where(hit, depth, 0.0).astype(np.float32)}


def label_check(blender: np.ndarray, raster: np.ndarray, instances: list[int]) -> dict:
    """How far Blender's instance masks are from the rasterizer's on the same settled scene and camera:
    the worst mask IoU, the largest box-edge difference in pixels, and the pixels where they disagree
    more than one pixel away from a raster mask's border (sampling jitter moves only border pixels)."""
    from scipy import ndimage

    from render_core.scenes.labels import box_of

    ious, box_diff, off_border = [], 0, 0
    for k in instances:
        a, r = blender == k, raster == k
        if not a.any() and not r.any():
            continue
        ious.append(float((a & r).sum() / max(1, (a | r).sum())))
        ba, br = box_of(a), box_of(r)
        if ba is None or br is None:
            box_diff = max(box_diff, 10**6)
        else:
            edges = lambda b: np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])  # noqa: E731
            box_diff = max(box_diff, int(np.abs(edges(ba) - edges(br)).max()))
        border = ndimage.binary_dilation(r, iterations=1) & ~ndimage.binary_erosion(r, iterations=1)
        off_border += int(((a ^ r) & ~border).sum())
    return {"objects": len(ious), "mask_iou_min": round(min(ious), 4) if ious else None,
            "box_max_diff_px": box_diff, "disagree_off_border_px": off_border}
