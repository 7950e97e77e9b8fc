"""MidasDepth vs the reference MiDaS outputs on fixture case A (synthetic weights, float32, CPU)."""

import gc

import numpy as np
import pytest
import torch
from PIL import Image

from ivid.depth import MidasDepth

NET_INPUT_ATOL = 1e-4
PREDICTION_ATOL = 1e-3
HOOK_BLOCKS = (5, 11, 17, 23)


@pytest.mark.slow
def test_case_a_matches_reference(synthetic_midas_ckpt, midas_fixtures):
    expected = np.load(midas_fixtures / "case_A_small.npz", allow_pickle=False)
    image = np.asarray(Image.open(midas_fixtures / "case_A_image.png").convert("RGB"))
    model = MidasDepth.from_checkpoint(synthetic_midas_ckpt, device="cpu")   # strict load
    captured = {}
    handles = [model.backbone.model.blocks[i].register_forward_hook(
        lambda module, args, out, i=i: captured.__setitem__(i, out[0, expected["hook_token_index"]].clone()))
        for i in HOOK_BLOCKS]
    try:
        net_input = model.transform(image)
        assert net_input.dtype == torch.float32 and tuple(net_input.shape) == (1, 3, 384, 512)
        d_input = np.abs(net_input.numpy() - expected["net_input"]).max()
        assert d_input <= NET_INPUT_ATOL, d_input

        depth = model.predict(image)                       # one full forward (~20 s on 2 cores)
        assert depth.shape == (384, 512) and depth.dtype == np.float32
        for level, block in enumerate(HOOK_BLOCKS):
            # reference tokens are stored as float16 (|x| <= ~5 -> rounding <= 2**-8)
            ref = expected["hook_tokens_f16"][level].astype(np.float32)
            np.testing.assert_allclose(captured[block].numpy(), ref, atol=4e-3, rtol=0)
        d_pred = np.abs(depth - expected["prediction_resized"]).max()
        print(f"max |d net_input| = {d_input:.3g}, max |d prediction_resized| = {d_pred:.3g}")
        assert d_pred <= PREDICTION_ATOL, d_pred
    finally:
        for handle in handles:
            handle.remove()
        captured.clear()
        del model
        gc.collect()
