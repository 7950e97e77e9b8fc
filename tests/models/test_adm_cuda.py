"""AdmUnet2d on CUDA against the CPU (and the reference fixtures); run by scripts/gpu_check.sh where a GPU is."""


import numpy as np
import pytest
import torch

from ivid.models import AdmUnet2d
from ivid.sampling.precision import prepare_backbone

pytestmark = pytest.mark.gpu


def _model(args, state_dict, device, **overrides):
    model = AdmUnet2d(**dict(args, **overrides)).eval()
    model.load_state_dict(state_dict)
    return model.to(device)


def _run(model, io, device):
    x = torch.from_numpy(io["x"]).to(device)
    t = torch.from_numpy(io["t"]).to(device)
    with torch.no_grad():
        return model(x, t, torch.from_numpy(io["classes"]).to(device)).float().cpu()


def test_cuda_matches_cpu_unet_fp32(ref):
    """float32 on CUDA (TF32 off) = float32 on the CPU = the reference's float32 output, within 1e-4."""
    io, args, state_dict = ref
    cuda = torch.device("cuda")
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        out_gpu = _run(_model(args, state_dict, cuda, use_fp16=False), io, cuda)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    out_cpu = _run(_model(args, state_dict, "cpu", use_fp16=False), io, "cpu")
    torch.testing.assert_close(out_gpu, out_cpu, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out_gpu.numpy(), io["out_cls_f32"], atol=1e-4, rtol=1e-4)


def test_cuda_matches_cpu_unet_fp16_torso(ref):
    """The released use_fp16 model (native half convolutions on CUDA) against the reference's fp16 output."""
    io, args, state_dict = ref
    cuda = torch.device("cuda")
    out = _run(_model(args, state_dict, cuda, use_fp16=True), io, cuda)
    np.testing.assert_allclose(out.numpy(), io["out_cls_fp16model"], atol=3e-2, rtol=0)  # as on the CPU


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precisions_on_cuda_stay_close(ref, precision):
    io, args, state_dict = ref
    cuda = torch.device("cuda")
    exact = _run(_model(args, state_dict, cuda, use_fp16=False), io, cuda)
    fast = _run(prepare_backbone(_model(args, state_dict, cuda, use_fp16=False), precision), io, cuda)
    assert fast.dtype == torch.float32 and torch.isfinite(fast).all()
    assert (fast - exact).abs().max() < (0.05 if precision == "bf16" else 0.01)
