"""RGBD view -> triangle mesh (``depth_to_mesh``), with the reference's flags.

Every pixel of an H x W linear depth map becomes one vertex (row-major, row 0 =
top), optionally surrounded by a 1-vertex padding ring ((H+2) x (W+2) grid).
Each grid quad gives two consecutive faces, split along its shorter diagonal,
counter-clockwise (front-facing) seen from the source camera. Per-vertex ``flag``
= 1 * edge (vertex of a depth-discontinuity face) + 2 * padding (ring vertex)
+ 4 * eroded (within ``erode_rgb`` vertices of an edge vertex).

Camera space follows :mod:`ivid.geometry.camera` (OpenGL, -z forward); world
positions are ``inverse(modelview) @ p_cam``. Geometry is computed in float64
(float32 on Apple MPS). NumPy input gives NumPy float64 / int64 arrays exactly as
the reference; a tensor input keeps everything on its device, with positions,
normals and uv in the depth's floating dtype.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as nnf

from ._arrays import tensors_to_numpy, to_tensor, tree_map, work_dtype
from .depth import erode_mask

FLAG_EDGE = 1
FLAG_PADDING = 2
FLAG_ERODED = 4
#: eye depth of the 'frustum' padding skirt (its ring vertices sit on z = -0.1)
FRUSTUM_SKIRT_DEPTH = 0.1

Array = Union[np.ndarray, torch.Tensor]


@dataclasses.dataclass
class Vertices:
    """Per-vertex attributes (V vertices, row-major over the vertex grid, row 0 = top).

    Attributes:
        position: (V, 3) world-space positions.
        uv: (V, 2) texture coordinates = pixel centres ((c+0.5)/W, (r+0.5)/H),
            v downward (ring vertices repeat their border pixel's uv).
        flag: (V, 1) int64, 1 * edge + 2 * padding + 4 * eroded.
        normal: (V, 3) unit world-space normals (towards the source camera), or None.
    """

    position: Array
    uv: Array
    flag: Array
    normal: Optional[Array] = None


@dataclasses.dataclass
class Mesh:
    """A view's mesh.

    Attributes:
        faces: (F, 3) int64 vertex indices, CCW seen from the source camera.
        vertices: :class:`Vertices`.
        depth: (H, W, 1) the linear depth it was built from (input dtype).
        fov: field of view in degrees.
        modelview: (4, 4) float64 world -> camera matrix of the source view
            (identity when none was given).
    """

    faces: Array
    vertices: Vertices
    depth: Array
    fov: float
    modelview: Array

    @property
    def camera_center(self) -> Array:
        """Returns: (3,) world-space centre of the source camera, ``inverse(modelview)[:3, 3]``."""
        modelview = to_tensor(self.modelview)
        center = torch.linalg.inv(modelview.to(work_dtype(modelview.device)))[:3, 3]
        return center if isinstance(self.modelview, torch.Tensor) else center.numpy()

    def to(self, device: Union[str, torch.device]) -> "Mesh":
        """Returns: the same mesh with every array as a tensor on ``device`` (dtypes kept)."""
        return tree_map(lambda v: to_tensor(v, device=device) if isinstance(v, (np.ndarray, torch.Tensor)) else v, self)

    def numpy(self) -> "Mesh":
        """Returns: the same mesh with every array as a NumPy array (dtypes kept)."""
        return tensors_to_numpy(self)


def decode_flags(flag: Array) -> Array:
    """Split vertex flags into 0/1 columns (is_edge, is_padding, is_eroded).

    Args:
        flag: (V, 1) or (V,) integer flags.

    Returns:
        (V, 3) float32 of the same kind (NumPy / tensor on the same device).
    """
    flag_t = to_tensor(flag).reshape(-1, 1).to(torch.int64)
    bits = torch.tensor([FLAG_EDGE, FLAG_PADDING, FLAG_ERODED], device=flag_t.device)
    decoded = ((flag_t & bits) != 0).to(torch.float32)
    return decoded if isinstance(flag, torch.Tensor) else decoded.numpy()


def _pixel_uv(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(H, W, 2) pixel-centre texture coordinates ((c+0.5)/W, (r+0.5)/H)."""
    u = (torch.arange(width, dtype=dtype, device=device) + 0.5) / width
    v = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
    return torch.stack(torch.meshgrid(u, v, indexing="xy"), dim=-1)


def _unproject(depth: torch.Tensor, uv: torch.Tensor, fov: float) -> torch.Tensor:
    """(H, W, 3) camera-space points ``depth * ((u-0.5)/f, (0.5-v)/f, -1)``, f = 0.5/tan(fov/2)."""
    focal = 0.5 / math.tan(math.radians(fov) / 2)
    direction = torch.stack(
        [(uv[..., 0] - 0.5) / focal, (0.5 - uv[..., 1]) / focal, -torch.ones_like(uv[..., 0])], dim=-1
    )
    return depth.unsqueeze(-1) * direction


def _edge_pad(grid: torch.Tensor) -> torch.Tensor:
    """Replicate an (H, W, C) grid by one cell on every side -> (H+2, W+2, C)."""
    return nnf.pad(grid.permute(2, 0, 1).unsqueeze(0), (1, 1, 1, 1), mode="replicate")[0].permute(1, 2, 0)


def _grid_normals(points: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) unit normals of a camera-space point grid (Sobel-smoothed central differences).

    ``ex`` = right - left neighbour, ``ey`` = upper - lower neighbour, each smoothed
    with [1, 2, 1] / 4 across the other axis (edge-replicated grid); ``n =
    normalize(ex x ey)`` points towards the camera.
    """
    padded = _edge_pad(points)
    ex = padded[:, 2:] - padded[:, :-2]  # (H+2, W, 3)
    ey = padded[:-2, :] - padded[2:, :]  # (H, W+2, 3)
    ex = (ex[:-2] + 2 * ex[1:-1] + ex[2:]) / 4
    ey = (ey[:, :-2] + 2 * ey[:, 1:-1] + ey[:, 2:]) / 4
    return nnf.normalize(torch.linalg.cross(ex, ey, dim=-1), dim=-1, eps=0.0)


def _push_padding_ring(points: torch.Tensor, depth: torch.Tensor, padding: Union[float, str], fov: float,
                       size: Tuple[int, int]) -> torch.Tensor:
    """Move the ring of a padded (H+2, W+2, 3) point grid outward (see :func:`depth_to_mesh`)."""
    height, width = size
    pixels = 1.0 if padding == "frustum" else float(padding)
    plane = 2 * math.tan(math.radians(fov) / 2)
    step_x, step_y = plane / width * pixels, plane / height * pixels  # per unit depth
    points = points.clone()
    points[:, 0, 0] -= step_x * depth[:, 0]
    points[:, -1, 0] += step_x * depth[:, -1]
    points[0, :, 1] += step_y * depth[0, :]
    points[-1, :, 1] -= step_y * depth[-1, :]
    if padding == "frustum":
        ring = torch.ones(depth.shape, dtype=torch.bool, device=depth.device)
        ring[1:-1, 1:-1] = False
        scale = torch.where(ring, FRUSTUM_SKIRT_DEPTH / depth, torch.ones_like(depth))
        points = points * scale.unsqueeze(-1)
    return points


def _length(vector: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (...) Euclidean length; the same sum order as ``square().sum(-1)``, without its slow
    reduction over a length-3 last dimension."""
    x, y, z = vector.unbind(-1)
    return (x * x + y * y + z * z).sqrt()


def _triangulate(points: torch.Tensor) -> torch.Tensor:
    """(2 (H-1) (W-1), 3) int64 faces of an (H, W, 3) point grid, two per quad, quads row-major."""
    height, width = points.shape[:2]
    index = torch.arange(height * width, device=points.device).reshape(height, width)
    top_left, top_right = index[:-1, :-1], index[:-1, 1:]
    bottom_left, bottom_right = index[1:, :-1], index[1:, 1:]
    diagonal_main = _length(points[:-1, :-1] - points[1:, 1:])
    diagonal_anti = _length(points[:-1, 1:] - points[1:, :-1])
    use_main = diagonal_main < diagonal_anti
    third_a = torch.where(use_main, bottom_right, bottom_left)
    third_b = torch.where(use_main, top_left, top_right)
    first = torch.stack([top_right, top_left, third_a], dim=-1)
    second = torch.stack([bottom_left, bottom_right, third_b], dim=-1)
    return torch.stack([first, second], dim=-2).reshape(-1, 3)


def _edge_vertices(faces: torch.Tensor, depth: torch.Tensor, atol: Optional[float],
                   rtol: Optional[float]) -> torch.Tensor:
    """(V,) bool: vertices of faces with max-min depth > atol AND max-min 1/depth > rtol.

    A tolerance given as None drops its criterion; both None -> no edges.
    """
    is_edge = torch.zeros(depth.numel(), dtype=torch.bool, device=depth.device)
    if atol is None and rtol is None:
        return is_edge
    face_depth = depth.reshape(-1).index_select(0, faces.reshape(-1)).view(faces.shape)
    is_jump = torch.ones(faces.shape[0], dtype=torch.bool, device=faces.device)
    if atol is not None:
        is_jump &= face_depth.amax(dim=1) - face_depth.amin(dim=1) > atol
    if rtol is not None:
        face_inverse = 1 / face_depth
        is_jump &= face_inverse.amax(dim=1) - face_inverse.amin(dim=1) > rtol
    is_edge[faces[is_jump].reshape(-1)] = True
    return is_edge


def _check_arguments(depth: torch.Tensor, padding: Any, fov: float) -> Tuple[int, int]:
    if not (depth.dim() == 2 or (depth.dim() == 3 and depth.shape[-1] == 1)) or min(depth.shape[:2]) < 2:
        raise ValueError(f"depth_to_mesh: depth must be (H, W) or (H, W, 1) with H, W >= 2, got {tuple(depth.shape)}")
    if padding is not None and padding != "frustum":
        if isinstance(padding, (bool, str)) or not isinstance(padding, (int, float, np.number)) or padding < 0:
            raise ValueError(f"depth_to_mesh: padding must be None, 'frustum' or a number >= 0, got {padding!r}")
    if not 0 < float(fov) < 180:
        raise ValueError(f"depth_to_mesh: fov must be in (0, 180) degrees, got {fov!r}")
    return int(depth.shape[0]), int(depth.shape[1])


def _vertex_grid(depth: torch.Tensor, padding: Union[None, float, str], fov: float, cal_normal: bool,
                 work: torch.dtype) -> Dict[str, Optional[torch.Tensor]]:
    """Camera-space vertex grid of an (H, W) depth map, padded when asked.

    Returns a dict of (h, w, .) grids: ``points`` (work dtype), ``uv`` (work
    dtype), ``normal`` (or None), ``depth`` (input dtype, for the discontinuity
    test) and ``is_padding`` (bool); (h, w) = (H, W) or (H+2, W+2).
    """
    height, width = depth.shape
    uv = _pixel_uv(height, width, work, depth.device)
    points = _unproject(depth.to(work), uv, fov)
    normal = _grid_normals(points) if cal_normal else None
    is_padding = torch.zeros(height, width, dtype=torch.bool, device=depth.device)
    if padding is not None:
        uv = _edge_pad(uv)
        depth = _edge_pad(depth[..., None])[..., 0]
        points = _push_padding_ring(_edge_pad(points), depth.to(work), padding, fov, (height, width))
        normal = _edge_pad(normal) if normal is not None else None
        is_padding = nnf.pad(is_padding, (1, 1, 1, 1), value=True)
    return {"points": points, "uv": uv, "normal": normal, "depth": depth, "is_padding": is_padding}


def _vertex_flags(faces: torch.Tensor, depth: torch.Tensor, is_padding: torch.Tensor, atol: Optional[float],
                  rtol: Optional[float], erode_rgb: Optional[int]) -> torch.Tensor:
    """(V, 1) int64 flags = 1 * edge + 2 * padding + 4 * eroded over an (h, w) vertex grid."""
    is_edge = _edge_vertices(faces, depth, atol, rtol)
    flag = is_edge.to(torch.int64) * FLAG_EDGE + is_padding.reshape(-1).to(torch.int64) * FLAG_PADDING
    if erode_rgb is not None and erode_rgb > 0:
        kept = erode_mask(~is_edge.reshape(is_padding.shape), 2 * int(erode_rgb) + 1)
        flag = flag + (~kept).reshape(-1).to(torch.int64) * FLAG_ERODED
    return flag.reshape(-1, 1)


def _modelview_tensor(modelview: Optional[Array], device: torch.device, work: torch.dtype) -> torch.Tensor:
    if modelview is None:
        return torch.eye(4, dtype=work, device=device)
    modelview_t = to_tensor(modelview, device=device, dtype=work)
    if modelview_t.shape != (4, 4):
        raise ValueError(f"depth_to_mesh: modelview must be 4x4, got {tuple(modelview_t.shape)}")
    return modelview_t


def depth_to_mesh(depth: Array, padding: Union[None, float, str] = None, fov: float = 45,
                  modelview: Optional[Array] = None, atol: Optional[float] = None, rtol: Optional[float] = None,
                  erode_rgb: Optional[int] = None, cal_normal: bool = False) -> Mesh:
    """Build the mesh of one view from its linear depth map (docs/design.md#depth-to-mesh).

    Args:
        depth: (H, W) or (H, W, 1) linear depth (camera units, > 0), NumPy or tensor.
        padding: None (no ring); a number k (ring pushed outward by k pixel widths at
            its depth); or 'frustum' (pushed by one pixel width, then slid along its
            ray to eye depth 0.1: a skirt towards the camera). Ring vertices get the
            padding flag and repeat their border pixel's uv, depth and normal.
        fov: field of view in degrees.
        modelview: (4, 4) world -> camera matrix of the view; None = identity.
        atol, rtol: discontinuity tolerances on depth and on 1/depth (a face with
            both spreads above them flags its 3 vertices as edge); None = unused.
        erode_rgb: e > 0 flags as eroded every vertex within a (2e+1) x (2e+1) box
            of an edge vertex (edge vertices included).
        cal_normal: compute per-vertex normals.

    Returns:
        :class:`Mesh` with ``faces`` (F, 3) int64 (F = 2 (h-1)(w-1) over the h x w
        vertex grid), ``vertices.position`` (V, 3) world, ``.uv`` (V, 2), ``.flag``
        (V, 1) int64, ``.normal`` (V, 3) world or None. NumPy input -> NumPy float64;
        tensor input -> tensors on its device, floats in its floating dtype.
    """
    is_tensor = isinstance(depth, torch.Tensor)
    depth_in = to_tensor(depth)
    height, width = _check_arguments(depth_in, padding, fov)
    work = work_dtype(depth_in.device)
    out_float = depth_in.dtype if is_tensor and torch.is_floating_point(depth_in) else work
    if not torch.is_floating_point(depth_in):
        depth_in = depth_in.to(work)

    grid = _vertex_grid(depth_in.reshape(height, width), padding, float(fov), cal_normal, work)
    faces = _triangulate(grid["points"])
    flag = _vertex_flags(faces, grid["depth"], grid["is_padding"], atol, rtol, erode_rgb)

    modelview_t = _modelview_tensor(modelview, depth_in.device, work)
    camera_to_world = torch.linalg.inv(modelview_t)
    rotation, translation = camera_to_world[:3, :3], camera_to_world[:3, 3]
    position = grid["points"].reshape(-1, 3) @ rotation.T + translation
    normal = grid["normal"].reshape(-1, 3) @ rotation.T if grid["normal"] is not None else None

    vertices = Vertices(
        position=position.to(out_float),
        uv=grid["uv"].reshape(-1, 2).to(out_float),
        flag=flag,
        normal=normal.to(out_float) if normal is not None else None,
    )
    mesh = Mesh(faces=faces, vertices=vertices, depth=depth_in.reshape(height, width, 1), fov=float(fov),
                modelview=modelview_t)
    return mesh if is_tensor else mesh.numpy()
