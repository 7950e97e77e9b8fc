"""The pure-PyTorch renderer behind warping, aggregated conditioning and fusion rendering.

It follows the reference's OpenGL (llvmpipe) rules, split into stages like
pytorch3d's rasteriser -> fragments -> shader (docs/renderer.md#pipeline):

========================  =================================================  =======================
stage                     what                                               where
========================  =================================================  =======================
clip                      world -> clip coordinates, :class:`ClipPlanes`     :mod:`.clip`
setup                     snapped vertices, per-face edge / depth equations  :mod:`.setup`
dense path                small triangles on candidate grids                 :mod:`.dense`
span path                 other snapped triangles, exact row spans           :mod:`.spans`
homogeneous path          near-plane / guard-band faces, float64             :mod:`.homogeneous`
(back-face discard)       padding fragments dropped before the depth test    :mod:`.discard`
keys                      depth test as one integer minimum per pixel        :mod:`.keys`
(the rasteriser)          all of the above: :func:`rasterize_keys`           :mod:`.rasterizer`
row resolve               key rows -> :class:`RowFragments`                  :mod:`.fragments`
vertex attributes         named, packed once, interpolated per block         :mod:`.attributes`
shade                     the warp and aggregation shaders                   :mod:`.shade`
fold                      mesh-order blend of aggregation renders            :mod:`.fold`
SSAA reduction            back to the image size                             :mod:`.ssaa`
========================  =================================================  =======================

:func:`simple_render` and :func:`aggregation_render` (:mod:`.renderers`) run the
stages on chunks of frames; :class:`RenderSettings` holds every memory / speed
budget (:func:`settings_for` picks the defaults per device; no budget changes a
result). The public entry points built on it are ``forward_backward_warp``,
``aggregate_conditions`` and ``render_fusion`` in :mod:`ivid.geometry.warp`.
"""

from .attributes import FragmentAttributes, PackedAttributes, VertexAttributes, interpolate_attributes, \
    pack_attributes
from .clip import ClipPlanes, projection, to_clip
from .discard import BackDiscard
from .fold import AggregationAccumulator, window_to_linear
from .fragments import RowFragments, resolve_rows
from .keys import RasterKeys
from .rasterizer import rasterize_keys
from .renderers import MeshArrays, aggregation_render, mesh_arrays, simple_render
from .settings import RenderSettings, settings_for
from .shade import aggregation_shade, simple_shade
from .ssaa import coverage_mask, downsample_color, pick_subpixel

__all__ = [
    "ClipPlanes", "projection", "to_clip",
    "BackDiscard", "rasterize_keys", "RasterKeys",
    "resolve_rows", "RowFragments",
    "VertexAttributes", "FragmentAttributes", "PackedAttributes", "pack_attributes", "interpolate_attributes",
    "simple_shade", "aggregation_shade",
    "AggregationAccumulator", "window_to_linear",
    "downsample_color", "pick_subpixel", "coverage_mask",
    "MeshArrays", "mesh_arrays", "simple_render", "aggregation_render",
    "RenderSettings", "settings_for",
]
