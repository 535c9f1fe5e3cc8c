"""`FastMeshRasterizer`: a drop-in `MeshRasterizer` with a fast CPU path.

It returns PyTorch3D `Fragments`, so every shader and texture type keeps working.
The fast path is used on CPU for forward-only rendering; on CUDA, when gradients
are needed, or for the rare clipped-and-split faces under a blur radius, it defers
to PyTorch3D's own kernel, so results are always PyTorch3D's semantics.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.renderer.mesh.clip import (
    ClipFrustum,
    clip_faces,
    convert_clipped_rasterization_to_original_faces,
)
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.renderer.mesh.rasterizer import Fragments
from pytorch3d.renderer.utils import parse_image_size
from pytorch3d.structures import Meshes

from render_core.raster.fast_kernel import rasterize_face_verts


def rasterize_meshes_fast(
    meshes: Meshes,
    image_size=256,
    blur_radius: float = 0.0,
    faces_per_pixel: int = 1,
    perspective_correct: bool = False,
    clip_barycentric_coords: bool = False,
    cull_backfaces: bool = False,
    z_clip_value: float | None = None,
    cull_to_frustum: bool = False,
):
    """Same arguments and outputs as `pytorch3d.renderer.mesh.rasterize_meshes` (CPU, no grad)."""
    verts_packed = meshes.verts_packed()
    face_verts = verts_packed[meshes.faces_packed()]
    first_idx = meshes.mesh_to_faces_packed_first_idx()
    num_faces = meshes.num_faces_per_mesh()
    im_size = parse_image_size(image_size)

    clipped = None
    if z_clip_value is not None or cull_to_frustum:
        frustum = ClipFrustum(
            left=-1,
            right=1,
            top=-1,
            bottom=1,
            perspective_correct=perspective_correct,
            z_clip_value=z_clip_value,
            cull=cull_to_frustum,
        )
        clipped = clip_faces(face_verts, first_idx, num_faces, frustum=frustum)
        face_verts = clipped.face_verts
        first_idx = clipped.mesh_to_face_first_idx
        num_faces = clipped.num_faces_per_mesh
        split = clipped.clipped_faces_neighbor_idx
        if split is not None and blur_radius > 0 and bool((split >= 0).any()):
            # Two halves of one split face compete for a pixel only inside the blur
            # margin; PyTorch3D resolves that in its kernel, so let it.
            return rasterize_meshes(
                meshes,
                image_size=image_size,
                blur_radius=blur_radius,
                faces_per_pixel=faces_per_pixel,
                bin_size=0,
                perspective_correct=perspective_correct,
                clip_barycentric_coords=clip_barycentric_coords,
                cull_backfaces=cull_backfaces,
                z_clip_value=z_clip_value,
                cull_to_frustum=cull_to_frustum,
            )

    pix_to_face, zbuf, bary, dists = rasterize_face_verts(
        face_verts,
        first_idx,
        num_faces,
        im_size,
        blur_radius=blur_radius,
        faces_per_pixel=faces_per_pixel,
        perspective_correct=perspective_correct,
        clip_barycentric_coords=clip_barycentric_coords,
        cull_backfaces=cull_backfaces,
    )
    if clipped is not None:
        pix_to_face, bary = convert_clipped_rasterization_to_original_faces(pix_to_face, bary, clipped)
    return pix_to_face, zbuf, bary, dists


class FastMeshRasterizer(MeshRasterizer):
    """`MeshRasterizer` whose CPU forward pass costs O(faces + covered pixels)."""

    def forward(self, meshes_world: Meshes, **kwargs) -> Fragments:
        use_stock = meshes_world.device.type != "cpu" or (
            torch.is_grad_enabled() and meshes_world.verts_packed().requires_grad
        )
        if use_stock:
            return super().forward(meshes_world, **kwargs)

        meshes_proj = self.transform(meshes_world, **kwargs)
        settings: RasterizationSettings = kwargs.get("raster_settings", self.raster_settings)
        cameras = kwargs.get("cameras", self.cameras)
        # Same defaults as MeshRasterizer.forward, so both paths agree on every setting.
        clip_bary = settings.clip_barycentric_coords
        if clip_bary is None:
            clip_bary = settings.blur_radius > 0.0
        if settings.perspective_correct is not None:
            perspective_correct = settings.perspective_correct
        else:
            perspective_correct = cameras.is_perspective()
        if settings.z_clip_value is not None:
            z_clip = settings.z_clip_value
        else:
            znear = cameras.get_znear()
            if isinstance(znear, torch.Tensor):
                znear = znear.min().item()
            z_clip = None if not perspective_correct or znear is None else znear / 2

        with torch.no_grad():
            pix_to_face, zbuf, bary, dists = rasterize_meshes_fast(
                meshes_proj,
                image_size=settings.image_size,
                blur_radius=settings.blur_radius,
                faces_per_pixel=settings.faces_per_pixel,
                perspective_correct=perspective_correct,
                clip_barycentric_coords=clip_bary,
                cull_backfaces=settings.cull_backfaces,
                z_clip_value=z_clip,
                cull_to_frustum=settings.cull_to_frustum,
            )
        return Fragments(pix_to_face=pix_to_face, zbuf=zbuf, bary_coords=bary, dists=dists)


def make_rasterizer(cameras=None, raster_settings: RasterizationSettings | None = None, device=None):
    """The rasterizer for a device: fast CPU path on CPU, PyTorch3D's GPU kernel on CUDA."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        return MeshRasterizer(cameras=cameras, raster_settings=raster_settings)
    return FastMeshRasterizer(cameras=cameras, raster_settings=raster_settings)
