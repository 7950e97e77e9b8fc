"""The sequential multiview sampler (docs/design.md#inference): G_u draws the first view, G_c every further one.

For a batch of B samples and V cameras per sample:

1. view 0: G_u samples RGBD from per-sample noise (DDPM when
   ``steps_uncond >= 1000``, else DDIM with ``steps_uncond`` steps), with
   classifier-free guidance ``guidance`` on the class labels - or the caller
   supplies it (image-to-3D, :mod:`ivid.sampling.image_to_3d`);
2. after each view, its mesh is built from its own sample:
   ``depth_to_mesh(linearize_depth(z, near, far), padding='frustum', fov,
   modelview, atol, rtol, erode_rgb, cal_normal=True)`` with colour = its RGB mapped to
   [0, 1] without clamping (as the reference);
3. view j >= 1: ``aggregate_conditions`` of the meshes of views 0..j-1 into
   camera j gives color / depth / mask / mask_rgb / depth_convex; G_c (DDIM,
   ``steps_cond``) samples with ``y = [color, depth]*2-1``, ``mask``, ``mask_rgb``,
   the guidance and the DDIM options ``replace_rgb`` / ``replace_depth`` /
   ``constrain_depth`` (docs/design.md#samplers).

Randomness: the initial noise of every view of sample b is drawn from
``generators[b]`` (a ``torch.Generator`` on the sampling device seeded with the
sample's seed), one ``randn(1, C, S, S)`` per view in view order. The noise the
samplers draw inside their loops comes from :func:`loop_generator`. No file I/O here.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ivid.diffusion import SAMPLERS, DdimSampler, DdpmSampler, Dpmpp2mSampler
from ivid.errors import OptionError
from ivid.geometry import depth_to_mesh, linearize_depth
from ivid.geometry.warp import aggregate_conditions_batch

__all__ = ["MultiviewOptions", "View", "Timings", "draw_noise", "make_sampler", "make_cond_sampler", "SAMPLER_CHOICES",
           "condition_kwargs", "loop_generator", "sample_first_view",
           "view_mesh", "batch_conditions", "sample_multiview", "takes_mask_rgb"]


@dataclass(frozen=True)
class MultiviewOptions:
    """Settings of the sequential sampler; defaults are the reference CLI defaults.

    Attributes:
        steps_uncond: G_u steps; >= 1000 means DDPM (1000 ancestral steps), else DDIM.
        steps_cond: G_c DDIM steps.
        guidance: classifier-free guidance strength s: ``(1+s) eps_c - s eps_null``.
        fov: field of view in degrees.
        near, far: planes that interpret the models' depth channel (z_buffer code).
        atol, rtol: depth-discontinuity tolerances for meshes and conditions.
        erode_rgb: erosion radius of colour near discontinuities.
        replace_rgb, replace_depth, constrain_depth: weights of the DDIM guidance
            options (0 disables one; constrain_depth needs replace_depth).
        eta: sampler noise in [0, 1]: DDIM's eta, or DPM-Solver++(2M)'s SDE noise fraction (0 = ODE);
            not used by DDPM.
        ssaa: super-sampling factor of the conditioning renderer.
        clip_denoised: clamp every step's predicted x_0 to [-1, 1] (off, as the reference's
            ``inference/sample.py``; see :mod:`ivid.diffusion.samplers`).
        sampler: ``auto`` (the reference: DDPM for G_u when ``steps_uncond >= T``, else DDIM;
            DDIM for G_c), ``ddpm`` (G_u DDPM with all T steps, G_c DDIM), ``ddim`` (both DDIM)
            or ``dpmpp_2m`` (both DPM-Solver++(2M), :mod:`ivid.diffusion.dpm_solver`).
    """

    steps_uncond: int = 1000
    steps_cond: int = 50
    guidance: float = 3.0
    fov: float = 45.0
    near: float = 0.6
    far: float = 5.0
    atol: float = 0.03
    rtol: float = 0.03
    erode_rgb: int = 3
    replace_rgb: float = 0.1
    replace_depth: float = 0.2
    constrain_depth: float = 0.5
    eta: float = 0.0
    ssaa: int = 3
    clip_denoised: bool = False
    sampler: str = "auto"


@dataclass
class View:
    """One generated view of one sample (CPU tensors).

    Attributes:
        rgb: ``H x W x 3`` float32 colour in [0, 1].
        z: ``H x W`` float32 depth code in [0, 1] (z_buffer with the run's near/far).
        modelview: ``4 x 4`` float64 world-to-camera matrix.
        cond: the aggregated condition this view was sampled from (``color``
            H x W x 3, ``depth`` H x W x 1, ``mask``, ``mask_rgb``, ``depth_convex``
            H x W x 1, float32), or None for the first view.
    """

    rgb: torch.Tensor
    z: torch.Tensor
    modelview: np.ndarray
    cond: Optional[Dict[str, torch.Tensor]] = None


@dataclass
class Timings:
    """Wall-clock seconds per phase, for benchmarks: ``model_uncond`` (G_u sampling), ``model_cond``
    (G_c sampling), ``condition`` (aggregate_conditions), ``mesh`` (depth_to_mesh of finished views)."""

    seconds: Dict[str, float] = field(default_factory=dict)
    device: Optional[torch.device] = None

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@contextmanager
def _measure(timings: Optional[Timings], phase: str) -> Iterator[None]:
    if timings is None:
        yield
    else:
        with timings.measure(phase):
            yield


def draw_noise(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """``B x C x H x W`` standard normal noise: one ``randn(1, C, H, W)`` per generator, on ``device``."""
    return torch.cat([torch.randn((1, *shape), generator=g, device=device) for g in generators], 0)


def _initial_noise(framework, generators: Sequence[torch.Generator]) -> torch.Tensor:
    backbone = framework.backbone
    shape = (backbone.out_channels, backbone.image_size, backbone.image_size)
    return draw_noise(generators, shape, framework.device)


#: ``--sampler`` choices (see :class:`MultiviewOptions`)
SAMPLER_CHOICES = ("auto", "ddpm", "ddim", "dpmpp_2m")


def make_sampler(framework, steps: int, name: str = "auto"):
    """G_u's sampler and its ``steps`` argument: for ``auto`` DDPM when ``steps >= framework.timesteps``
    (the reference: steps_uncond >= 1000), else DDIM; ``ddpm`` always runs all T steps."""
    if name not in SAMPLER_CHOICES:
        raise OptionError(f"--sampler {name!r}: choose one of {', '.join(SAMPLER_CHOICES)}")
    if name == "auto":
        name = "ddpm" if steps >= framework.timesteps else "ddim"
    if name == "ddpm":
        return DdpmSampler(framework), None
    return SAMPLERS[name](framework), int(steps)


def make_cond_sampler(framework, name: str = "auto"):
    """G_c's sampler: DDIM (the reference; also for ``ddpm``, whose T steps per view G_c never takes),
    or DPM-Solver++(2M) for ``dpmpp_2m``."""
    return Dpmpp2mSampler(framework) if name == "dpmpp_2m" else DdimSampler(framework)


def loop_generator(generators: Sequence[torch.Generator]):
    """The generator handed to a sampler for the noise it draws inside its loop.

    That noise is DDPM's ancestral noise, DDIM's and DPM-Solver++'s with eta > 0, and the fill-in
    noise InpaintCFG puts into the masked condition pixels at every model call
    (so G_c draws some even with eta = 0). The samplers accept one generator per
    sample (``ivid.diffusion.noise``), so every sample depends on its own seed
    only, whatever else shares its batch.
    """
    return generators[0] if len(generators) == 1 else list(generators)


def sample_first_view(g_u, generators: Sequence[torch.Generator], classes: Optional[torch.Tensor],
                      options: MultiviewOptions, timings: Optional[Timings] = None, in_loop=None) -> torch.Tensor:
    """Draw the first view of every sample with G_u.

    The initial noise of sample b is one ``randn(1, 4, S, S)`` from ``generators[b]``;
    ``in_loop`` is the generator of the sampler's in-loop noise (default
    :func:`loop_generator`).

    Returns:
        ``B x 4 x S x S`` float32 RGBD in [-1, 1] on the model's device.
    """
    noise = _initial_noise(g_u, generators)
    sampler, steps = make_sampler(g_u, options.steps_uncond, options.sampler)
    with _measure(timings, "model_uncond"), torch.no_grad():
        result = sampler.sample(len(generators), noise=noise, classes=classes, steps=steps, eta=options.eta,
                                generator=in_loop if in_loop is not None else loop_generator(generators),
                                strength=options.guidance, clip_denoised=options.clip_denoised)
    return result.samples.float()


def view_mesh(rgbd_pm1: torch.Tensor, modelview: np.ndarray, options: MultiviewOptions):
    """Mesh and colour of one sampled view.

    Args:
        rgbd_pm1: ``4 x S x S`` RGBD sample in [-1, 1] (depth channel = z_buffer code).
        modelview: ``4 x 4`` world-to-camera matrix of the view.

    Returns:
        ``(mesh, color)`` with the mesh from :func:`ivid.geometry.depth_to_mesh`
        (frustum padding, flags, normals, world space) and ``color`` ``S x S x 3``
        float32 ``rgb * 0.5 + 0.5``, NOT clamped (about [0, 1]), both on the input's device.
    """
    # No clamping (as the reference): a texture may hold values slightly outside [0, 1], and
    # they blend as they are; the conditioning render truncates its blended colour to 8 bits
    # (clipping then) like the reference's. linearize_depth clamps the depth code itself.
    x01 = rgbd_pm1.float() * 0.5 + 0.5
    depth = linearize_depth(x01[3], options.near, options.far)
    mesh = depth_to_mesh(depth, padding="frustum", fov=options.fov, modelview=modelview,
                         atol=options.atol, rtol=options.rtol, erode_rgb=options.erode_rgb, cal_normal=True)
    return mesh, x01[:3].permute(1, 2, 0).contiguous()


def batch_conditions(meshes: Sequence[Sequence], colors: Sequence[Sequence[torch.Tensor]],
                     modelviews: Sequence[np.ndarray], options: MultiviewOptions,
                     device: torch.device) -> Dict[str, torch.Tensor]:
    """Aggregated conditions of B samples, each from all its previous views (one batched render).

    Args:
        meshes, colors: per sample, the meshes / ``S x S x 3`` colours of its views so far
            (the same number for every sample).
        modelviews: per sample, the target camera.

    Returns:
        dict of ``B x C x S x S`` float32 tensors on ``device``: ``color`` (C=3, [0,1]),
        ``depth`` (1, z code, 0 where masked), ``mask``, ``mask_rgb`` (1, {0,1}),
        ``depth_convex`` (1, unmasked z code).
    """
    targets = torch.as_tensor(np.stack([np.asarray(m, np.float64) for m in modelviews]), device=device)
    cond = aggregate_conditions_batch([list(m) for m in meshes], [list(c) for c in colors], targets,
                                      fov=options.fov, near=options.near, far=options.far, atol=options.atol,
                                      rtol=options.rtol, erode_rgb=options.erode_rgb, ssaa=options.ssaa)
    keys = ("color", "depth", "mask", "mask_rgb", "depth_convex")
    return {k: torch.as_tensor(cond[k], device=device, dtype=torch.float32).permute(0, 3, 1, 2) for k in keys}


def takes_mask_rgb(g_c) -> bool:
    """Whether G_c's backbone has the ``mask_rgb`` input channel (10 input channels, as released;
    a G_c trained with ``p_uncond_img > 0`` or without the ``erode_rgb`` augment has 9)."""
    return bool(getattr(g_c, "takes_mask_rgb", True))


def condition_kwargs(cond: Dict[str, torch.Tensor], options: MultiviewOptions,
                     with_mask_rgb: bool = True) -> Dict[str, object]:
    """Sampler keyword arguments of G_c for a batch of conditions (docs/design.md#samplers, #inference)."""
    y = torch.cat([cond["color"], cond["depth"]], 1) * 2 - 1
    kwargs: Dict[str, object] = {"y": y, "mask": cond["mask"], "strength": options.guidance}
    if with_mask_rgb:
        kwargs["mask_rgb"] = cond["mask_rgb"]
    if options.replace_rgb > 0:
        kwargs["replace_rgb"] = (options.replace_rgb, y[:, :3], cond["mask_rgb"])
    if options.replace_depth > 0:
        kwargs["replace_depth"] = (options.replace_depth, y[:, 3:], cond["mask"])
        if options.constrain_depth > 0:
            kwargs["constrain_depth"] = (options.constrain_depth, cond["depth_convex"] * 2 - 1)
    return kwargs


def _conditional_view(g_c, sampler, generators, in_loop, classes, cond, options, timings) -> torch.Tensor:
    noise = _initial_noise(g_c, generators)
    with _measure(timings, "model_cond"), torch.no_grad():
        result = sampler.sample(len(generators), noise=noise, classes=classes, steps=int(options.steps_cond),
                                eta=options.eta, generator=in_loop, clip_denoised=options.clip_denoised,
                                **condition_kwargs(cond, options, takes_mask_rgb(g_c)))
    return result.samples.float()


def _per_sample_modelviews(modelviews, batch: int) -> List[List[np.ndarray]]:
    """Accept one camera list for all samples or one list per sample."""
    first = np.asarray(modelviews[0])
    if first.ndim == 2:
        views = [np.asarray(m, dtype=np.float64) for m in modelviews]
        return [views for _ in range(batch)]
    if len(modelviews) != batch:
        raise ValueError(f"got camera lists for {len(modelviews)} samples, expected {batch}")
    lists = [[np.asarray(m, dtype=np.float64) for m in per] for per in modelviews]
    if len({len(per) for per in lists}) != 1:
        raise ValueError("every sample of a batch needs the same number of views")
    return lists


def _to_view(rgbd_pm1: torch.Tensor, modelview: np.ndarray, cond: Optional[Dict[str, torch.Tensor]],
             b: int) -> View:
    x01 = (rgbd_pm1.detach().float() * 0.5 + 0.5).clamp(0.0, 1.0).cpu()
    cpu_cond = None
    if cond is not None:
        cpu_cond = {k: v[b].detach().float().permute(1, 2, 0).cpu() for k, v in cond.items()}
    return View(rgb=x01[:3].permute(1, 2, 0).contiguous(), z=x01[3].contiguous(),
                modelview=np.asarray(modelview, dtype=np.float64), cond=cpu_cond)


def sample_multiview(g_u, g_c, modelviews, generators: Sequence[torch.Generator],
                     classes: Optional[torch.Tensor] = None, options: MultiviewOptions = MultiviewOptions(),
                     first_view: Optional[torch.Tensor] = None, progress: bool = False,
                     timings: Optional[Timings] = None, position: int = 0,
                     on_view: Optional[Callable[[int, int], None]] = None) -> List[List[View]]:
    """Sample B multiview sets, view after view.

    Args:
        g_u: unconditional RGBD framework (``ClassifierFreeGuidance``), or None
            when ``first_view`` is given.
        g_c: conditional RGBD framework (``InpaintCFG``); may be None when only
            one view per sample is requested.
        modelviews: V cameras (``4 x 4`` world-to-camera) shared by all samples, or
            B lists of V cameras. Camera 0 is the first view's.
        generators: B ``torch.Generator`` on the models' device, one per sample.
        classes: LongTensor (B,) of class labels (-1 = null class) or None.
        options: :class:`MultiviewOptions`.
        first_view: optional ``B x 4 x S x S`` RGBD in [-1, 1] used as view 0
            instead of sampling G_u (image-to-3D).
        progress: show a progress bar over views.
        timings: optional :class:`Timings` accumulating model/condition/mesh time.
        position: tqdm line of the progress bar.
        on_view: optional ``on_view(done, total)`` called after each finished view of the batch
            (``done`` = 1 .. V views ready, ``total`` = V), e.g. a UI's progress bar; an exception
            it raises stops sampling there (a UI's cancel button).

    Returns:
        B lists of V :class:`View` (CPU tensors), in camera order.
    """
    batch = len(generators)
    in_loop = loop_generator(generators)
    cams = _per_sample_modelviews(modelviews, batch)
    num_views = len(cams[0])
    if first_view is None:
        if g_u is None:
            raise ValueError("sample_multiview: need g_u or first_view")
        x_0 = sample_first_view(g_u, generators, classes, options, timings, in_loop)
    else:
        if first_view.shape[0] != batch:
            raise ValueError(f"first_view holds {first_view.shape[0]} samples, expected {batch}")
        device = g_c.device if g_c is not None else first_view.device
        x_0 = first_view.to(device=device, dtype=torch.float32)
    if num_views > 1 and g_c is None:
        raise ValueError("sample_multiview: more than one view needs g_c")
    views: List[List[View]] = [[_to_view(x_0[b], cams[b][0], None, b)] for b in range(batch)]
    if on_view is not None:
        on_view(1, num_views)
    if num_views == 1:
        return views
    meshes: List[list] = [[] for _ in range(batch)]
    colors: List[list] = [[] for _ in range(batch)]
    sampler = make_cond_sampler(g_c, options.sampler)
    device = g_c.device
    current = x_0
    for j in tqdm(range(1, num_views), desc="views", leave=False, disable=not progress,
                  position=position, dynamic_ncols=True):
        with _measure(timings, "mesh"):
            for b in range(batch):
                mesh, color = view_mesh(current[b], cams[b][j - 1], options)
                meshes[b].append(mesh)
                colors[b].append(color)
        with _measure(timings, "condition"):
            cond = batch_conditions(meshes, colors, [cams[b][j] for b in range(batch)], options, device)
        current = _conditional_view(g_c, sampler, generators, in_loop, classes, cond, options, timings)
        for b in range(batch):
            views[b].append(_to_view(current[b], cams[b][j], cond, b))
        if on_view is not None:
            on_view(j + 1, num_views)
    return views
