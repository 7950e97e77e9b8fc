"""ivid.sampling.presets: a request resolves against its preset in the library, whoever builds it."""

import dataclasses

import pytest

from ivid.errors import OptionError
from ivid.render.free_view import RenderRequest
from ivid.sampling import SampleRequest
from ivid.sampling.multiview import MultiviewOptions
from ivid.sampling.presets import PRESETS, request_defaults, resolve_request

DEMO = PRESETS["demo"]


def test_sample_request_takes_the_demo_preset():
    request = resolve_request(SampleRequest(preset="demo"))
    assert (request.atol, request.rtol, request.erode_rgb) == (0.1, 0.1, 1)
    assert (request.steps_uncond, request.steps_cond, request.clip_denoised) == (100, 20, True)
    assert (request.replace_rgb, request.replace_depth, request.eta) == (0.5, 0.5, 1.0)
    assert (request.output_dir, request.seeds) == ("samples/demo", "0-3")
    assert {k: getattr(request, k) for k in DEMO.files} == DEMO.files
    # what the preset does not set keeps the reference default; fields without one stay None
    assert (request.guidance, request.fov, request.constrain_depth, request.viewset) == (3.0, 45.0, 0.5, "3x9")
    assert request.classes is None and request.num_samples is None and request.device is None
    assert resolve_request(request) == request


def test_explicit_fields_win_over_the_preset():
    request = resolve_request(SampleRequest(preset="demo", atol=0.03, erode_rgb=0, clip_denoised=False,
                                            ckpt_uncond="mine.pt", steps_cond=50))
    assert (request.atol, request.rtol, request.erode_rgb, request.clip_denoised) == (0.03, 0.1, 0, False)
    assert (request.ckpt_uncond, request.ckpt_cond, request.steps_cond) == ("mine.pt", DEMO.ckpt_cond, 50)


def test_the_demo_eta_applies_to_every_sampler():
    # DPM-Solver++ takes eta as its SDE noise fraction, so the demo's eta 1 applies to it as to DDIM
    fast = resolve_request(SampleRequest(preset="demo", sampler="dpmpp_2m", steps_uncond=20, steps_cond=10))
    assert fast.eta == 1.0 and (fast.atol, fast.replace_rgb) == (0.1, 0.5)
    assert resolve_request(SampleRequest(preset="demo", sampler="ddim")).eta == 1.0
    assert resolve_request(SampleRequest(preset="demo", sampler="dpmpp_2m", eta=0.0)).eta == 0.0
    assert resolve_request(SampleRequest(preset="demo", eta=0.3)).eta == 0.3


def test_without_a_preset_the_reference_defaults_apply():
    request = resolve_request(SampleRequest())
    reference = MultiviewOptions()
    assert request.options() == reference
    assert (request.ckpt_uncond, request.seeds, request.batchsize) == ("ckpts/imagenet128_uncond.pt", "0-8", 10)
    # every sampler setting is a request field with the sampler's reference default
    defaults = request_defaults(SampleRequest)
    for f in dataclasses.fields(MultiviewOptions):
        assert defaults[f.name] == getattr(reference, f.name), f.name


def test_render_request_takes_the_demo_preset():
    request = resolve_request(RenderRequest(scene_dir="s", preset="demo"))
    assert (request.atol, request.rtol, request.erode_rgb, request.video_size) == (0.1, 0.1, 1, 256)
    assert (request.frames, request.traj, request.seed, request.ply_mode) == (60, "swing", 0, "mesh")
    explicit = resolve_request(RenderRequest(scene_dir="s", preset="demo", rtol=0.03, video_size=64))
    assert (explicit.atol, explicit.rtol, explicit.video_size) == (0.1, 0.03, 64)
    plain = resolve_request(RenderRequest(scene_dir="s"))
    assert (plain.atol, plain.erode_rgb, plain.video_size) == (0.03, 3, None)


def test_unknown_preset_is_an_option_error():
    with pytest.raises(OptionError, match="--preset 'huge': unknown preset; valid: demo"):
        resolve_request(SampleRequest(preset="huge"))
    with pytest.raises(OptionError, match="unknown preset"):
        request_defaults(RenderRequest, "huge")
