"""The toy ray caster (ivid.toy.raycast): exact depths of analytic shapes, pitched camera, supersampling."""

import math

import numpy as np
import pytest

from ivid.toy import image_scene
from ivid.toy.raycast import Box, Ellipsoid, Material, Plane, Scene, render_scene

GREY = Material((0.5, 0.5, 0.5))


def _backdrop(depth):
    return Plane((0.0, 0.0, 1.0 - depth), (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), GREY)


def test_backdrop_depth_is_exact():
    _, depth = render_scene(Scene([], [_backdrop(2.5)]), 16, ssaa=1)
    np.testing.assert_allclose(depth, 2.5, rtol=1e-6)


def test_sphere_depth_and_silhouette_are_analytic():
    size, radius = 64, 0.2
    scene = Scene([Ellipsoid((0.0, 0.0, 0.0), GREY, 0.0, (radius,) * 3)], [_backdrop(3.0)])
    _, depth = render_scene(scene, size, ssaa=1)
    focal = 0.5 / math.tan(math.radians(22.5))
    coords = ((np.arange(size) + 0.5) / size - 0.5) / focal
    x, y = np.meshgrid(coords, -coords)
    # ray (x, y, -1) from (0, 0, 1) meets |p| = r at t = (1 - sqrt(1 - (1 + x^2 + y^2)(1 - r^2))) / (1 + x^2 + y^2)
    q = 1 + x * x + y * y
    disc = 1 - q * (1 - radius ** 2)
    hit = disc >= 0
    expected = np.where(hit, (1 - np.sqrt(np.maximum(disc, 0))) / q, 3.0)
    np.testing.assert_allclose(depth, expected, rtol=1e-4)
    assert hit.sum() > 100


def test_box_depth_face_on():
    scene = Scene([Box((0.0, 0.0, 0.0), GREY, 0.0, (0.1, 0.1, 0.1))], [_backdrop(3.0)])
    _, depth = render_scene(scene, 32, ssaa=1)
    assert depth[16, 16] == pytest.approx(0.9, rel=1e-6)  # front face z = 0.1 -> depth 0.9


def test_pitched_camera_depth_of_the_origin():
    scene = Scene([Ellipsoid((0.0, 0.0, 0.0), GREY, 0.0, (0.1,) * 3)], [_backdrop(3.0)], camera_pitch=0.3)
    _, depth = render_scene(scene, 32, ssaa=1)
    # the ray through the image centre (between the 4 middle pixels) reaches the sphere at distance 0.9
    assert np.all(np.abs(depth[15:17, 15:17] - 0.9) < 0.01)


def test_ssaa_keeps_exact_centre_depth():
    scene, _ = image_scene(0, 3, "imagenet", 10)
    _, d1 = render_scene(scene, 24, ssaa=1)
    rgb3, d3 = render_scene(scene, 24, ssaa=3)
    np.testing.assert_array_equal(d1, d3)
    assert rgb3.dtype == np.uint8 and rgb3.shape == (24, 24, 3)
