"""Vectorised CPU mesh rasterisation whose cost grows with faces + covered pixels.

PyTorch3D's CPU kernel tests every face against every pixel (O(pixels x faces)).
Here each face enumerates only the pixel centres inside its screen bounding box,
runs the same per-pixel tests as PyTorch3D's C++ kernel (bounding box, barycentric
coordinates, perspective correction, clipping, signed squared distance, blur
radius), and keeps the K nearest faces per pixel ordered by (z, face index), the
same order the C++ kernel sorts by. Outputs use PyTorch3D's layout and fill values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

K_EPSILON = 1e-8  # pytorch3d.renderer.mesh.rasterize_meshes.kEpsilon
_CANDIDATE_CHUNK = 1 << 22  # bbox (face, pixel) pairs examined at once: bounds peak memory
_INT64_MAX = torch.iinfo(torch.int64).max


def _pixel_centres_ndc(size: int, other: int, device: torch.device) -> torch.Tensor:
    """NDC coordinate of pixel centres along one axis, as PyTorch3D's PixToNonSquareNdc.

    Index 0 is the top row / left column, whose NDC coordinate is the largest
    (+Y up, +X left), so the values decrease along the axis.
    """
    rng = 2.0 * size / other if size > other else 2.0
    idx = torch.arange(size - 1, -1, -1, device=device, dtype=torch.float32)
    offset = rng / 2.0
    return -offset + (rng * idx + offset) / size  # (size,)


def _edge(px, py, ax, ay, bx, by):
    # EdgeFunctionForward(p, a, b): (p - a) x (b - a)
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _point_segment_dist2(px, py, ax, ay, bx, by):
    # PointLineDistanceForward: squared distance to the segment (to the end point if it has no length).
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    t = ((px - ax) * dx + (py - ay) * dy) / torch.where(l2 > K_EPSILON, l2, torch.ones_like(l2))
    t = t.clamp(0.0, 1.0)
    qx, qy = px - (ax + t * dx), py - (ay + t * dy)
    d2 = qx * qx + qy * qy
    degenerate = (px - bx) ** 2 + (py - by) ** 2
    return torch.where(l2 > K_EPSILON, d2, degenerate)


def _triangle_dist2(fv, px, py):
    """PointTriangleDistanceForward: squared distance from each pixel to its face's nearest edge."""
    x0, y0 = fv[:, 0, 0], fv[:, 0, 1]
    x1, y1 = fv[:, 1, 0], fv[:, 1, 1]
    x2, y2 = fv[:, 2, 0], fv[:, 2, 1]
    return torch.minimum(
        torch.minimum(_point_segment_dist2(px, py, x0, y0, x1, y1), _point_segment_dist2(px, py, x0, y0, x2, y2)),
        _point_segment_dist2(px, py, x1, y1, x2, y2),
    )


def _pixel_tests(fv, px, py, blur_radius, perspective_correct, clip_barycentric_coords):
    """Per (face, pixel) candidate: (keep mask, z, bary (C, 3), inside).

    fv: (C, 3, 3) face vertices (NDC x, y, view z); px, py: (C,) pixel centres.
    """
    x0, y0, z0 = fv[:, 0, 0], fv[:, 0, 1], fv[:, 0, 2]
    x1, y1, z1 = fv[:, 1, 0], fv[:, 1, 1], fv[:, 1, 2]
    x2, y2, z2 = fv[:, 2, 0], fv[:, 2, 1], fv[:, 2, 2]
    area = _edge(x2, y2, x0, y0, x1, y1) + K_EPSILON
    w0 = _edge(px, py, x1, y1, x2, y2) / area
    w1 = _edge(px, py, x2, y2, x0, y0) / area
    w2 = _edge(px, py, x0, y0, x1, y1) / area
    if perspective_correct:
        t0, t1, t2 = w0 * z1 * z2, w1 * z0 * z2, w2 * z0 * z1
        denom = (t0 + t1 + t2).clamp_min(K_EPSILON)
        w0, w1, w2 = t0 / denom, t1 / denom, t2 / denom
    bary = torch.stack([w0, w1, w2], dim=-1)  # (C, 3)
    if clip_barycentric_coords:
        clipped = bary.clamp_min(0.0)
        bary_out = clipped / clipped.sum(-1, keepdim=True).clamp_min(1e-5)
    else:
        bary_out = bary
    pz = bary_out[:, 0] * z0 + bary_out[:, 1] * z1 + bary_out[:, 2] * z2
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
    if blur_radius > 0:
        keep = (pz >= 0) & (inside | (_triangle_dist2(fv, px, py) < blur_radius))
    else:
        keep = (pz >= 0) & inside
    return keep, pz, bary_out, inside


@dataclass
class _FaceBoxes:
    """Per face: the screen box (NDC, grown by the blur radius) and the inclusive pixel ranges it covers."""

    xmin: torch.Tensor
    xmax: torch.Tensor
    ymin: torch.Tensor
    ymax: torch.Tensor
    c0: torch.Tensor  # first column
    r0: torch.Tensor  # first row
    wc: torch.Tensor  # columns covered
    counts: torch.Tensor  # pixels covered (0 for culled faces)


def _face_boxes(fv: torch.Tensor, xs_ndc: torch.Tensor, ys_ndc: torch.Tensor, blur_radius: float,
                cull_backfaces: bool) -> _FaceBoxes:
    H, W = len(ys_ndc), len(xs_ndc)
    # Face-level culling, as the C++ kernel: zero area, back faces, any vertex behind the camera.
    # ComputeFaceAreas: EdgeFunctionForward(v0, v1, v2), in that order so rounding matches.
    area = _edge(fv[:, 0, 0], fv[:, 0, 1], fv[:, 1, 0], fv[:, 1, 1], fv[:, 2, 0], fv[:, 2, 1])
    valid = ~((area <= K_EPSILON) & (area >= -K_EPSILON))
    if cull_backfaces:
        valid &= area >= 0.0
    valid &= fv[:, :, 2].min(dim=1).values >= K_EPSILON
    valid &= torch.isfinite(fv).all(dim=(1, 2))

    # Screen bounding boxes expanded by sqrt(blur) -> inclusive pixel index ranges.
    r = math.sqrt(blur_radius)
    xmin = fv[:, :, 0].min(1).values - r
    xmax = fv[:, :, 0].max(1).values + r
    ymin = fv[:, :, 1].min(1).values - r
    ymax = fv[:, :, 1].max(1).values + r
    # Pixel centre NDC is affine in the index, ndc = a - b * i (b > 0), so the centres
    # inside [min, max] are i in [(a - max) / b, (a - min) / b]. A tiny slack absorbs
    # float rounding; the exact float comparison later then decides, as in C++.
    ax, ay = xs_ndc[0], ys_ndc[0]
    bx = (xs_ndc[0] - xs_ndc[-1]) / (W - 1) if W > 1 else torch.tensor(2.0)
    by = (ys_ndc[0] - ys_ndc[-1]) / (H - 1) if H > 1 else torch.tensor(2.0)
    slack = 1e-3
    c0 = torch.ceil((ax - xmax) / bx - slack).clamp(-1, W).long()
    c1 = torch.floor((ax - xmin) / bx + slack).clamp(-1, W).long()
    r0 = torch.ceil((ay - ymax) / by - slack).clamp(-1, H).long()
    r1 = torch.floor((ay - ymin) / by + slack).clamp(-1, H).long()
    c0, c1 = c0.clamp(0, W - 1), c1.clamp(-1, W - 1)
    r0, r1 = r0.clamp(0, H - 1), r1.clamp(-1, H - 1)
    wc = (c1 - c0 + 1).clamp_min(0)
    hc = (r1 - r0 + 1).clamp_min(0)
    counts = torch.where(valid, wc * hc, torch.zeros_like(wc))
    return _FaceBoxes(xmin, xmax, ymin, ymax, c0, r0, wc, counts)


def _candidate_pairs(f: torch.Tensor, cnt: torch.Tensor, boxes: _FaceBoxes, xs_ndc: torch.Tensor, ys_ndc: torch.Tensor):
    """(face, column, row, x, y) of every pixel centre inside the boxes of faces `f` (`cnt` pixels each)."""
    n_pairs = int(cnt.sum())
    device = f.device
    pair_face = torch.repeat_interleave(f, cnt, output_size=n_pairs)  # (C,)
    first = torch.cumsum(cnt, 0) - cnt
    local = torch.arange(n_pairs, device=device) - torch.repeat_interleave(first, cnt, output_size=n_pairs)
    w_of = boxes.wc[pair_face]
    col = boxes.c0[pair_face] + local % w_of
    row = boxes.r0[pair_face] + torch.div(local, w_of, rounding_mode="floor")
    px, py = xs_ndc[col], ys_ndc[row]
    in_box = (px <= boxes.xmax[pair_face]) & (px >= boxes.xmin[pair_face])
    in_box &= (py <= boxes.ymax[pair_face]) & (py >= boxes.ymin[pair_face])
    return tuple(t[in_box] for t in (pair_face, col, row, px, py))


def _nearest_k(kept_pix: list[torch.Tensor], kept_key: list[torch.Tensor], K: int):
    """(pixel, slot, face) of the K nearest (z, face) keys per pixel."""
    pix_all = torch.cat(kept_pix)
    key_all = torch.cat(kept_key)
    order = torch.argsort(key_all, stable=True)
    order = order[torch.argsort(pix_all[order], stable=True)]
    pix_sorted, key_sorted = pix_all[order], key_all[order]
    _, group_counts = torch.unique_consecutive(pix_sorted, return_counts=True)
    group_first = torch.cumsum(group_counts, 0) - group_counts
    rank = torch.arange(pix_sorted.numel(), device=pix_all.device) - torch.repeat_interleave(group_first, group_counts)
    top = rank < K
    return pix_sorted[top], rank[top], key_sorted[top] & 0xFFFFFFFF


def rasterize_face_verts(
    face_verts: torch.Tensor,
    mesh_to_face_first_idx: torch.Tensor,
    num_faces_per_mesh: torch.Tensor,
    image_size: tuple[int, int],
    blur_radius: float = 0.0,
    faces_per_pixel: int = 1,
    perspective_correct: bool = False,
    clip_barycentric_coords: bool = False,
    cull_backfaces: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise packed faces; same contract as PyTorch3D's `_RasterizeFaceVerts.forward`.

    Args:
        face_verts: (F, 3, 3) float32, per face the (x_ndc, y_ndc, z_view) of its vertices.
        mesh_to_face_first_idx: (N,) first packed face of each mesh.
        num_faces_per_mesh: (N,) faces per mesh.
        image_size: (H, W).
    Returns:
        pix_to_face (N, H, W, K) int64, zbuf (N, H, W, K), bary (N, H, W, K, 3),
        dists (N, H, W, K); -1 where a pixel has fewer than K faces.
    """
    device = face_verts.device
    H, W = int(image_size[0]), int(image_size[1])
    K = int(faces_per_pixel)
    N = int(num_faces_per_mesh.shape[0])
    fv = face_verts.detach().to(torch.float32)
    F = fv.shape[0]

    outputs = (torch.full((N, H, W, K), -1, dtype=torch.int64, device=device),
               torch.full((N, H, W, K), -1.0, dtype=torch.float32, device=device),
               torch.full((N, H, W, K, 3), -1.0, dtype=torch.float32, device=device),
               torch.full((N, H, W, K), -1.0, dtype=torch.float32, device=device))
    if F == 0 or N == 0:
        return outputs
    face_to_mesh = torch.repeat_interleave(torch.arange(N, device=device), num_faces_per_mesh.to(device), output_size=F)
    xs_ndc = _pixel_centres_ndc(W, H, device)  # (W,) decreasing
    ys_ndc = _pixel_centres_ndc(H, W, device)  # (H,) decreasing
    boxes = _face_boxes(fv, xs_ndc, ys_ndc, blur_radius, cull_backfaces)
    face_ids = torch.nonzero(boxes.counts > 0).squeeze(1)
    if face_ids.numel() == 0:
        return outputs
    counts = boxes.counts[face_ids]
    cum = torch.cumsum(counts, 0)

    best_key = torch.full((N * H * W,), _INT64_MAX, dtype=torch.int64, device=device) if K == 1 else None
    kept_pix, kept_key = [], []
    start = 0
    while start < face_ids.numel():
        # Chunk faces so a chunk's bbox pairs stay near _CANDIDATE_CHUNK.
        base = int(cum[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(cum, base + _CANDIDATE_CHUNK, right=True)), start + 1)
        pair_face, col, row, px, py = _candidate_pairs(face_ids[start:stop], counts[start:stop], boxes, xs_ndc, ys_ndc)
        keep, pz, _, _ = _pixel_tests(fv[pair_face], px, py, blur_radius, perspective_correct, clip_barycentric_coords)
        pair_face, col, row, pz = pair_face[keep], col[keep], row[keep], pz[keep]
        pix = (face_to_mesh[pair_face] * H + row) * W + col
        # pz >= 0 here, so its float32 bit pattern orders like the value: pack (z, face)
        # into one int64 and a single min/sort gives PyTorch3D's (z, face) order.
        key = (pz.view(torch.int32).to(torch.int64) << 32) | pair_face
        if K == 1:
            best_key.scatter_reduce_(0, pix, key, reduce="amin")
        else:
            kept_pix.append(pix)
            kept_key.append(key)
        start = stop

    if K == 1:
        pix = torch.nonzero(best_key != _INT64_MAX).squeeze(1)
        slot, face = torch.zeros_like(pix), best_key[pix] & 0xFFFFFFFF
    else:
        pix, slot, face = _nearest_k(kept_pix, kept_key, K)
    if pix.numel() == 0:
        return outputs
    _write_winners(outputs, fv, pix, slot, face, xs_ndc, ys_ndc, K, perspective_correct, clip_barycentric_coords)
    return outputs


def _write_winners(outputs, fv, pix, slot, face, xs_ndc, ys_ndc, K: int, perspective_correct: bool,
                   clip_barycentric_coords: bool) -> None:
    """Recompute the winners' outputs exactly (a handful per pixel, cheap) into the output tensors."""
    pix_to_face, zbuf, bary_out, dists = outputs
    W, H = len(xs_ndc), len(ys_ndc)
    col = pix % W
    row = torch.div(pix, W, rounding_mode="floor") % H
    px, py = xs_ndc[col], ys_ndc[row]
    _, pz, bary, inside = _pixel_tests(fv[face], px, py, 0.0, perspective_correct, clip_barycentric_coords)
    dist2 = _triangle_dist2(fv[face], px, py)
    flat = pix * K + slot
    pix_to_face.view(-1)[flat] = face
    zbuf.view(-1)[flat] = pz
    bary_out.view(-1, 3)[flat] = bary
    dists.view(-1)[flat] = torch.where(inside, -dist2, dist2)
