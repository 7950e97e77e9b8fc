"""The 3D-consistency metric: hand-computed measures, and scenes of known geometry (tests/metrics/synthetic_scene.py).

A perfectly consistent scene (every view ray-cast from one textured 3D scene) must score the
ideal: reprojection PSNR above the bound that the renderer's resampling allows (derived in
:func:`_resampling_psnr_bound`), every pair sharing its views, co-visible pixels exactly the
geometrically co-visible ones (up to a band along their border), and conditions built by the
sampler's own aggregation followed to well within the issue's 0.1 target. Scenes with one view
replaced, shifted or with a wrong depth must score clearly worse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ivid.geometry import linearize_depth, project_depth, viewset
from ivid.metrics import consistency as cm

from . import synthetic_scene as synth

SIZE = 32
NEAR, FAR = 0.6, 5.0


# --- hand-computed values ---------------------------------------------------------------------------

def test_masked_rmse_psnr_sse_hand_values():
    a = torch.zeros(1, 2, 2, 3)
    b = torch.zeros(1, 2, 2, 3)
    b[0, 0, 0] = 0.3   # inside the mask: 3 channels of error 0.3
    b[0, 0, 1] = 0.6   # outside the mask: ignored
    mask = torch.tensor([[[True, False], [True, True]]])
    sse, count = cm.masked_sse(a, b, mask)
    assert sse.item() == pytest.approx(3 * 0.09) and count.item() == 9
    # MSE = 0.27 / 9 = 0.03
    assert cm.masked_rmse(a, b, mask).item() == pytest.approx(math.sqrt(0.03))
    assert cm.masked_psnr(a, b, mask).item() == pytest.approx(10 * math.log10(1 / 0.03))
    assert cm.masked_psnr(a * 2 - 1, b * 2 - 1, mask, peak=2.0).item() == pytest.approx(10 * math.log10(1 / 0.03))
    assert math.isnan(cm.masked_rmse(a, b, torch.zeros(1, 2, 2, dtype=torch.bool)).item())
    # single-channel maps (depth): one value per pixel
    d0, d1 = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]), torch.tensor([[[1.5, 2.0], [3.0, 0.0]]])
    sse, count = cm.masked_sse(d0, d1, torch.tensor([[[True, True], [False, False]]]))
    assert sse.item() == pytest.approx(0.25) and count.item() == 2
    assert cm.masked_rmse(d0, d1, torch.ones(1, 2, 2, dtype=torch.bool)).item() == pytest.approx(math.sqrt(16.25 / 4))


def test_pooled_values_and_psnr_edge_cases():
    # two entries: sse 0.1 over 10 values and 0.3 over 10 values -> MSE 0.02
    assert cm.pooled_rmse(torch.tensor([0.1, 0.3]), torch.tensor([10.0, 10.0])) == pytest.approx(math.sqrt(0.02))
    assert cm.pooled_psnr(torch.tensor([0.1, 0.3]), torch.tensor([10.0, 10.0])) == pytest.approx(
        10 * math.log10(50))
    assert math.isnan(cm.pooled_psnr(torch.tensor([0.0]), torch.tensor([0.0])))
    assert cm.pooled_psnr(torch.tensor([0.0]), torch.tensor([3.0])) == math.inf
    assert cm.psnr_from_mse(torch.tensor(0.01)).item() == pytest.approx(20.0)


def test_depth_code_planes():
    code = cm.depth_code(torch.tensor([NEAR, FAR, 2.0], dtype=torch.float64), NEAR, FAR)
    z = (1 / NEAR - 1 / 2.0) / (1 / NEAR - 1 / FAR)  # z_buffer code, docs/conventions.md
    assert code.tolist() == pytest.approx([-1.0, 1.0, 2 * z - 1])


def test_condition_adherence_hand_values():
    rgb = torch.full((2, 2, 2, 3), 0.5)
    depth = torch.full((2, 2, 2), 2.0)
    cond_rgb = rgb.clone()
    cond_rgb[1, 0, 0] = 0.6          # colour off by 0.1 in [0, 1] = 0.2 in [-1, 1], at one of 2 pixels of mask_rgb
    cond_depth = depth.clone()
    cond_depth[1, 1, 1] = 2.2        # depth off at one of 4 mask pixels
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[1] = True
    mask_rgb = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask_rgb[1, 0] = True
    out = cm.condition_adherence(rgb, depth, cond_rgb, cond_depth, mask, mask_rgb, NEAR, FAR)
    assert math.isnan(out["rgb_rmse"][0].item()) and math.isnan(out["depth_rmse"][0].item())
    assert out["rgb_rmse"][1].item() == pytest.approx(math.sqrt(3 * 0.2 ** 2 / 6))
    z = lambda d: 2 * (1 / NEAR - 1 / d) / (1 / NEAR - 1 / FAR) - 1  # noqa: E731
    assert out["depth_rmse"][1].item() == pytest.approx(abs(z(2.0) - z(2.2)) / 2)  # sqrt(e^2 / 4)
    assert out["depth_rel"][1].item() == pytest.approx(0.2 / 2.2 / 4)
    assert out["mask_fraction"].tolist() == [0.0, 1.0]


# --- camera neighbours ----------------------------------------------------------------------------

def test_neighbour_pairs_of_builtin_viewsets():
    pairs = cm.neighbour_pairs(np.stack(viewset("3x9")))
    assert len(pairs) == 2 * (3 * 8 + 2 * 9)  # 3 rows x 8 horizontal + 2 x 9 vertical links, both directions
    as_set = {tuple(p) for p in pairs.tolist()}
    assert all((b, a) in as_set for a, b in as_set)
    # generation order: yaw outer [0, .15, -.15, ...], pitch inner [0, .15, -.15]
    assert {b for a, b in as_set if a == 0} == {1, 2, 3, 6}
    assert {b for a, b in as_set if a == 24} == {18, 25, 26}  # yaw -0.6 (last column), pitch 0
    ring = cm.neighbour_pairs(np.stack(viewset("360")))
    degree = np.bincount(ring[:, 0].numpy())
    assert len(ring) == 40 and (degree == 2).all()  # a closed ring of 20 views
    two = cm.neighbour_pairs(np.stack(viewset("random", num=2, generator=np.random.default_rng(0))))
    assert two.tolist() == [[0, 1], [1, 0]]
    assert cm.first_view_pairs(4).tolist() == [[0, 1], [0, 2], [0, 3]]


# --- scenes of known geometry ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def cameras():
    return [np.asarray(m, np.float64) for m in viewset("3x9")]


@pytest.fixture(scope="module")
def consistent(cameras):
    return synth.scene_views(cameras, SIZE)


def _tensors(views):
    return cm.scene_tensors(views)


def _score(views, **kwargs):
    t = _tensors(views)
    return cm.scene_consistency(t["rgb"], t["depth"], t["modelview"], t["fov"], t["cond"], NEAR, FAR, **kwargs)


def _resampling_psnr_bound(cameras) -> float:
    """Lowest PSNR the reprojection of a consistent synthetic scene can reach, from the renderer's resampling.

    The warped colour at a target pixel centre is the source colour looked up at the
    projection of that pixel's surface point: a bilinear interpolation of the source's
    pixel samples (unit spacing), read by a nearest-texel lookup on the texture upsampled
    ``TEXTURE_UPSAMPLE`` times (position error <= 0.5 / TEXTURE_UPSAMPLE pixel per axis).
    With ``s`` the largest world distance between adjacent pixels (times 1.1 for the
    second-order terms: perspective within a triangle, affine vs projective uv), a texture
    ``0.5 + A sin(k a.X)`` has per-pixel derivatives |f'| <= A k s and |f''| <= A k^2 s^2 along
    each image axis, so per value

        |error| <= (|f_xx| + |f_yy|) / 8  +  2 * 0.5 / U * |f'|  +  1 / 255
                <= A k^2 s^2 / 4  +  A k s / U  +  1 / 255    (uint8 rounding of both images).

    Every co-visible pixel's error being below it, PSNR >= -20 log10(bound).
    """
    s = 1.1 * synth.max_pixel_footprint(cameras, SIZE)
    a, k, u = synth.AMPLITUDE, synth.K, cm.TEXTURE_UPSAMPLE
    bound = a * k * k * s * s / 4 + a * k * s / u + 1 / 255
    return -20 * math.log10(bound)


def test_consistent_scene_reprojects_to_the_ideal(cameras, consistent):
    bound = _resampling_psnr_bound(cameras)
    assert bound > 15  # the scene's texture is smooth enough for the bound to mean something
    scores = _score(consistent)
    assert scores["first_psnr"] >= bound and scores["neighbour_psnr"] >= bound
    assert min(scores["pairs"]["first"]["psnr"]) >= bound
    assert min(scores["pairs"]["neighbour"]["psnr"]) >= bound
    assert scores["first_share"] == 1.0 and scores["neighbour_share"] == 1.0
    assert scores["conditioned_views"] == 0 and math.isnan(scores["cond_rgb_rmse"])


@pytest.mark.parametrize("target", [1, 3, 13, 26])
def test_covisible_pixels_are_the_geometrically_covisible_ones(cameras, consistent, target):
    t = _tensors(consistent)
    warped = cm.reproject(t["rgb"], t["depth"], t["modelview"], t["fov"], torch.tensor([[0, target]]))
    measured = cm.covisible_mask(warped, t["depth"][[target]])[0].numpy()
    truth = synth.true_covisible(cameras[0], cameras[target], SIZE)
    assert not (measured & ~truth).any()  # never a pixel that the source cannot see
    # missed pixels only within 2 pixels of the co-visible region's border or of a depth jump (the mesh
    # stops at the source's pixel centres, faces across depth jumps are not drawn, and a pixel needs 3/4
    # of its sub-pixels covered)
    surface = synth.cast(cameras[target], SIZE)["surface"]
    padded_truth = np.pad(truth, 2, constant_values=False)
    padded_surface = np.pad(surface, 2, mode="edge")
    interior = np.ones_like(truth)
    for dy in range(5):
        for dx in range(5):
            interior &= padded_truth[dy:dy + SIZE, dx:dx + SIZE]
            interior &= padded_surface[dy:dy + SIZE, dx:dx + SIZE] == surface
    assert not (interior & ~measured).any()
    assert measured.sum() >= 0.5 * truth.sum()


def _with(views, index, **changes):
    out = [dict(v) for v in views]
    out[index] = {**out[index], **changes}
    return out


def test_replaced_or_shifted_view_scores_clearly_worse(cameras, consistent):
    bound = _resampling_psnr_bound(cameras)
    ideal = _score(consistent)
    replaced = _score(_with(consistent, 5, rgb=consistent[20]["rgb"]))
    shifted = _score(_with(consistent, 5, rgb=np.roll(consistent[5]["rgb"], 3, axis=1)))
    for degraded in (replaced, shifted):
        assert degraded["first_psnr"] < ideal["first_psnr"] - 10
        assert degraded["neighbour_psnr"] < ideal["neighbour_psnr"] - 10
        # the pairs into view 5 fall below what resampling alone can explain
        index = degraded["pairs"]["first"]["pairs"].index([0, 5])
        assert degraded["pairs"]["first"]["psnr"][index] < bound
        # geometry is unchanged: the same pixels are co-visible
        assert degraded["first_covisible"] == pytest.approx(ideal["first_covisible"])


def test_wrong_depth_loses_covisibility(consistent):
    ideal = _score(consistent)
    wrong = _score(_with(consistent, 5, depth=consistent[5]["depth"] * 1.3))
    index = wrong["pairs"]["first"]["pairs"].index([0, 5])
    assert wrong["pairs"]["first"]["fraction"][index] == 0.0
    assert wrong["first_share"] == pytest.approx(25 / 26)
    assert wrong["first_covisible"] < ideal["first_covisible"]


def _sampler_conditions(views):
    """Each view's aggregated condition, built as inference/sample.py builds it (demo tolerances)."""
    from ivid.sampling.multiview import MultiviewOptions, batch_conditions, view_mesh

    options = MultiviewOptions(near=NEAR, far=FAR, atol=0.1, rtol=0.1, erode_rgb=1)
    meshes, colors, out = [], [], []
    for j, view in enumerate(views):
        cond = None
        if j > 0:
            c = batch_conditions([meshes], [colors], [view["modelview"]], options, torch.device("cpu"))
            mask = c["mask"][0, 0].numpy() > 0.5
            cond = {"rgb": (c["color"][0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8),
                    "depth": (linearize_depth(c["depth"][0, 0].numpy(), NEAR, FAR) * mask).astype(np.float32),
                    "mask": mask, "mask_rgb": c["mask_rgb"][0, 0].numpy() > 0.5}
        out.append({**view, "cond": cond if cond is not None else {
            "rgb": np.zeros_like(view["rgb"]), "depth": np.zeros_like(view["depth"]),
            "mask": np.zeros(view["depth"].shape, bool), "mask_rgb": np.zeros(view["depth"].shape, bool)}})
        code = project_depth(torch.from_numpy(view["depth"]), NEAR, FAR) * 2 - 1
        rgbd = torch.cat([torch.from_numpy(view["rgb"]).float() / 255 * 2 - 1, code[..., None]], -1)
        mesh, color = view_mesh(rgbd.permute(2, 0, 1), view["modelview"], options)
        meshes.append(mesh)
        colors.append(color)
    return out


@pytest.mark.slow
def test_condition_adherence_of_consistent_and_replaced_views(consistent):
    views = _sampler_conditions(consistent[:9])  # the first three 3x9 yaws
    ideal = _score(views)
    assert ideal["conditioned_views"] == 8
    assert ideal["cond_fraction"] > 0.3
    # a consistent scene meets the target (<= 0.1 colour RMSE) with a wide margin
    assert ideal["cond_rgb_rmse"] < 0.05
    assert ideal["cond_depth_rel"] < 0.01 and ideal["cond_depth_rmse"] < 0.05
    replaced = _score(_with(views, 5, rgb=consistent[20]["rgb"], depth=consistent[20]["depth"] * 1.3))
    assert replaced["per_view"]["rgb_rmse"][5] > 0.1
    assert replaced["per_view"]["rgb_rmse"][5] > 5 * ideal["per_view"]["rgb_rmse"][5]
    assert replaced["per_view"]["depth_rel"][5] > 0.2
    assert replaced["cond_rgb_rmse"] > ideal["cond_rgb_rmse"]


def test_summarize_means_over_scenes():
    scenes = [{"first_psnr": 20.0, "cond_rgb_rmse": math.nan}, {"first_psnr": 30.0, "cond_rgb_rmse": 0.2}]
    out = cm.summarize(scenes)
    assert out["scenes"] == 2 and out["first_psnr"] == 25.0 and out["cond_rgb_rmse"] == 0.2
    assert math.isnan(out["neighbour_psnr"])


def test_single_view_scene_has_no_pairs(consistent):
    scores = _score(consistent[:1])
    assert math.isnan(scores["first_psnr"]) and math.isnan(scores["neighbour_share"])


def test_refuses_invalid_depth(consistent):
    depth = np.where(np.arange(SIZE) < 3, np.inf, consistent[2]["depth"]).astype(np.float32)
    broken = _with(consistent, 2, depth=depth)
    with pytest.raises(ValueError, match="depth must be finite and > 0"):
        _score(broken)
