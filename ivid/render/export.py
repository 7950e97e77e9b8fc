"""Export a scene as a coloured PLY mesh or point cloud (binary, our own small writer), or as binary glTF.

Every view of the scene becomes its unpadded grid mesh
(:func:`ivid.geometry.depth_to_mesh` with ``padding=None`` and the
discontinuity tolerances): one vertex per pixel at its world position, coloured
with that pixel's RGB, with its normal. Edge faces - those whose three vertices
all carry the discontinuity flag, which the renderers treat as edges too - are
dropped, so silhouettes are not bridged by stretched triangles. Overlapping views are written as they are (no merging),
which is what a fusion render shows too. The file is ``binary_little_endian``
PLY 1.0 with ``x y z nx ny nz`` (float32), ``red green blue`` (uchar) and, for
a mesh, ``vertex_indices`` (uchar count + int32 indices): MeshLab, Blender and
Open3D read it.

:func:`export_scene_glb` writes the same mesh (same faces, colours and normals) as
binary glTF 2.0 (``.glb``, written by trimesh, an optional dependency: ``pip install -e
".[app]"``): browsers, Gradio's 3D viewer and Blender show it. It leaves out the vertices
no face uses (pixels whose faces were all edge faces): viewers frame a model by the
bounds of its vertices, and such stray points, often far behind the scene, would pull
the view off it.
Our world space already is glTF's (right-handed, +y up, the canonical first view
looks down -z from +z, docs/conventions.md), so positions are written unchanged.
The material is unlit (``KHR_materials_unlit``) and double-sided: the vertex colours
are the sampled pixels, which already carry their shading, so a viewer's lights
must not shade them again. glTF vertex colours are linear RGB, so the pixels' sRGB
values are linearised (the sRGB transfer function, rounded to 8 bits) before writing;
a viewer turns them back into the pixels' colours on screen.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ivid.errors import OptionError
from ivid.utils.io import atomic_write

__all__ = ["PLY_MODES", "scene_geometry", "write_ply", "export_scene_ply", "export_scene_glb", "srgb_to_linear_u8"]

PLY_MODES = ("mesh", "points")

_VERTEX_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
_FACE_DTYPE = np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))])


def scene_geometry(views: Sequence[Dict[str, object]], atol: Optional[float] = 0.03,
                   rtol: Optional[float] = 0.03) -> Dict[str, np.ndarray]:
    """Vertices, normals, colours and faces of all views of a scene (world space).

    Args:
        views: :mod:`ivid.scene` views (``rgb`` H x W x 3 uint8, ``depth`` H x W
            linear, ``modelview``, ``fov``).
        atol, rtol: discontinuity tolerances; edge faces (3 flagged vertices) are dropped.

    Returns:
        ``position`` (V, 3) float32, ``normal`` (V, 3) float32, ``color`` (V, 3)
        uint8 with V = sum of H*W over views, and ``faces`` (F, 3) int64 indexing them.
    """
    from ivid.geometry import depth_to_mesh

    positions, normals, colors, faces = [], [], [], []
    offset = 0
    for view in views:
        depth = np.asarray(view["depth"], dtype=np.float32)
        mesh = depth_to_mesh(depth, padding=None, fov=float(view["fov"]), modelview=np.asarray(view["modelview"]),
                             atol=atol, rtol=rtol, cal_normal=True)
        flag = np.asarray(mesh.vertices.flag).reshape(-1)
        view_faces = np.asarray(mesh.faces, dtype=np.int64)
        keep = ~np.all((flag[view_faces] & 1) != 0, axis=1)  # an edge face: all 3 vertices flagged
        positions.append(np.asarray(mesh.vertices.position, dtype=np.float32))
        normals.append(np.asarray(mesh.vertices.normal, dtype=np.float32))
        colors.append(np.asarray(view["rgb"], dtype=np.uint8).reshape(-1, 3))
        faces.append(view_faces[keep] + offset)
        offset += positions[-1].shape[0]
    return {"position": np.concatenate(positions), "normal": np.concatenate(normals),
            "color": np.concatenate(colors), "faces": np.concatenate(faces)}


def write_ply(path: str, position: np.ndarray, color: np.ndarray, normal: Optional[np.ndarray] = None,
              faces: Optional[np.ndarray] = None) -> None:
    """Write a binary little-endian PLY file atomically.

    Args:
        position: (V, 3) float positions.
        color: (V, 3) uint8 RGB.
        normal: optional (V, 3) normals (zeros when None).
        faces: optional (F, 3) vertex indices (a point cloud when None).
    """
    count = len(position)
    vertices = np.empty(count, dtype=_VERTEX_DTYPE)
    normal = np.zeros((count, 3), np.float32) if normal is None else normal
    for k, axis in enumerate("xyz"):
        vertices[axis] = position[:, k]
        vertices["n" + axis] = normal[:, k]
    for k, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = color[:, k]
    header = ["ply", "format binary_little_endian 1.0", "comment written by ivid",
              f"element vertex {count}"]
    header += [f"property float {n}" for n in ("x", "y", "z", "nx", "ny", "nz")]
    header += [f"property uchar {n}" for n in ("red", "green", "blue")]
    face_rows = None
    if faces is not None:
        face_rows = np.empty(len(faces), dtype=_FACE_DTYPE)
        face_rows["count"] = 3
        face_rows["vertex_indices"] = faces
        header += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    header.append("end_header")
    with atomic_write(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(vertices.tobytes())
        if face_rows is not None:
            f.write(face_rows.tobytes())


def export_scene_ply(path: str, views: Sequence[Dict[str, object]], mode: str = "mesh",
                     atol: Optional[float] = 0.03, rtol: Optional[float] = 0.03) -> Dict[str, int]:
    """Write a scene as a coloured PLY mesh (``mode='mesh'``) or point cloud (``'points'``).

    Returns:
        ``{"vertices": V, "faces": F}`` as written.
    """
    if mode not in PLY_MODES:
        raise OptionError(f"--ply_mode {mode!r}: use one of {', '.join(PLY_MODES)}")
    geometry = scene_geometry(views, atol, rtol)
    faces = geometry["faces"] if mode == "mesh" else None
    write_ply(path, geometry["position"], geometry["color"], geometry["normal"], faces)
    return {"vertices": len(geometry["position"]), "faces": 0 if faces is None else len(faces)}


def srgb_to_linear_u8(rgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB -> 8-bit linear RGB (IEC 61966-2-1 transfer function), e.g. for glTF vertex colours."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return np.round(linear * 255.0).astype(np.uint8)


def _unlit_material(tree: Dict[str, object]) -> None:
    """glTF tree post-processor: one unlit, double-sided, white material for every primitive (colours come
    from the vertices' ``COLOR_0``, which multiplies the base colour)."""
    tree["materials"] = [{"name": "ivid_vertex_colors", "doubleSided": True,
                          "pbrMetallicRoughness": {"baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                                                   "metallicFactor": 0.0, "roughnessFactor": 1.0},
                          "extensions": {"KHR_materials_unlit": {}}}]
    for mesh in tree.get("meshes", []):
        for primitive in mesh["primitives"]:
            primitive["material"] = 0
    used = tree.setdefault("extensionsUsed", [])
    if "KHR_materials_unlit" not in used:
        used.append("KHR_materials_unlit")


def export_scene_glb(path: str, views: Sequence[Dict[str, object]], atol: Optional[float] = 0.03,
                     rtol: Optional[float] = 0.03) -> Dict[str, int]:
    """Write a scene as a coloured triangle mesh in binary glTF 2.0 (atomically).

    The mesh is :func:`scene_geometry`'s (edge faces dropped) without the vertices no face
    uses; vertices keep their order, so the vertices written are ``position[unique(faces)]``.

    Returns:
        ``{"vertices": V, "faces": F}`` as written.

    Raises:
        ImportError: trimesh is not installed (the message says how to install it).
        ValueError: the scene has no faces.
    """
    try:
        import trimesh
        from trimesh.exchange.gltf import export_glb
    except ImportError as err:
        raise ImportError(f"{path}: writing glTF needs trimesh; install it with pip install trimesh "
                          "(or pip install -e \".[app]\")") from err
    geometry = scene_geometry(views, atol, rtol)
    if len(geometry["faces"]) == 0:
        raise ValueError(f"{path}: the scene has no faces to write (every face lies on a depth edge)")
    used = np.unique(geometry["faces"])  # sorted: the kept vertices keep their order
    index = np.full(len(geometry["position"]), -1, np.int64)
    index[used] = np.arange(len(used))
    # process=False keeps vertices and faces exactly as given (no merging, no reordering)
    mesh = trimesh.Trimesh(vertices=geometry["position"][used], faces=index[geometry["faces"]],
                           vertex_colors=srgb_to_linear_u8(geometry["color"][used]),
                           vertex_normals=geometry["normal"][used],
                           process=False)
    data = export_glb(trimesh.Scene(mesh), include_normals=True, tree_postprocessor=_unlit_material)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return {"vertices": len(used), "faces": len(geometry["faces"])}
