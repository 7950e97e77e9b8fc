"""``MidasDepth``: MiDaS v3.1 ``dpt_beit_large_512`` monocular depth on modern timm.

DPT (``features=256``, readout "project", no BN, non-negative output) on a
BEiT-L/16 backbone, loading the official checkpoint file. The output is MiDaS
relative inverse depth (disparity up to an unknown scale and shift per image;
larger = nearer), the quantity IVID's ``depths/*.npz`` hold (docs/design.md#training-data).

Typical use::

    model = MidasDepth.from_checkpoint("ckpts/dpt_beit_large_512.pt", device="cuda")
    disparity = model.predict(rgb_uint8)          # H x W float32, image size
"""

from __future__ import annotations

import contextlib
import os
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .backbone import MidasBeitBackbone
from .official_weights import convert_checkpoint, load_checkpoint_file
from .decoder import DptDecoder
from .transforms import NET_SIZE, check_rgb_uint8, resize_prediction, transform_image

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}

# A few-thousand-parameter configuration with the same structure, for tests.
TINY_ARGS = dict(embed_dim=32, depth=4, num_heads=2, hook_blocks=(0, 1, 2, 3),
                 neck_channels=(8, 16, 32, 32), features=8, head_channels=4, net_size=64,
                 window=4)


class MidasDepth(nn.Module):
    """MiDaS DPT-BEiT-L-512 depth model. Defaults are the official architecture.

    Args:
        embed_dim, depth, num_heads: BEiT size (1024, 24, 16).
        hook_blocks: 0-based blocks feeding the decoder (5, 11, 17, 23).
        neck_channels: reassembled map widths (256, 512, 1024, 1024).
        features: decoder width (256).
        head_channels: hidden width before the last 1x1 conv of the head (32).
        net_size: target side of the input transform (512, MiDaS ``--height``): one side of
            the network input equals it, see ``transforms.compute_input_size``.
        window: token grid side of the stored rel-pos tables (32 = 512 / 16).

    Building never downloads anything (timm ``Beit`` is built directly, no
    pretrained weights). Weights are float32; ``predict*`` take a ``precision``
    ('fp32', or 'fp16'/'bf16' autocast for CUDA).
    """

    def __init__(self, embed_dim: int = 1024, depth: int = 24, num_heads: int = 16,
                 hook_blocks: Sequence[int] = (5, 11, 17, 23),
                 neck_channels: Sequence[int] = (256, 512, 1024, 1024), features: int = 256,
                 head_channels: int = 32, net_size: int = NET_SIZE, window: int = 32):
        super().__init__()
        if len(hook_blocks) != 4:
            raise ValueError(f"hook_blocks must name 4 blocks, got {tuple(hook_blocks)}")
        self.net_size = int(net_size)
        self.backbone = MidasBeitBackbone(embed_dim, depth, num_heads, hook_blocks, window=window)
        self.decoder = DptDecoder(embed_dim, neck_channels, features, head_channels)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: Union[str, os.PathLike], device: Optional[Union[str, torch.device]] = None,
                        net_size: int = NET_SIZE) -> "MidasDepth":
        """Load the official ``dpt_beit_large_512.pt`` layout strictly (``weights_only=True``).

        The model is built on the meta device and takes over the loaded tensors
        (no second copy of the 1.3 GB weights). Returns the model in eval mode on
        ``device`` (default CPU).
        """
        state_dict = load_checkpoint_file(path)
        with torch.device("meta"):
            model = cls(net_size=net_size)
        converted = convert_checkpoint(state_dict, model.state_dict(), source=os.fspath(path))
        del state_dict
        model.load_state_dict(converted, strict=True, assign=True)
        model.backbone.init_buffers()
        return model.to(torch.device(device) if device is not None else "cpu").eval()

    @classmethod
    def random(cls, seed: int = 0, device: Optional[Union[str, torch.device]] = None, **kwargs) -> "MidasDepth":
        """A model with deterministic random weights (for tests and speed checks).

        ``kwargs`` are constructor arguments (``MidasDepth.random(**TINY_ARGS)`` is
        tiny). Weights: N(0, 1/fan_in) for matrices/kernels, 1 + 0.1 N for norm
        scales, 0.1 (1 + 0.1 N) for LayerScale, 0.05 N otherwise, drawn from
        ``torch.Generator().manual_seed(seed)``; the last bias is 1 so that the
        final ReLU passes most pixels.
        """
        model = cls(**kwargs)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                if "gamma_" in name:
                    value = 0.1 * (1 + 0.1 * noise)
                elif ".norm" in name and name.endswith("weight"):
                    value = 1 + 0.1 * noise
                elif param.ndim >= 2:
                    value = noise / (param.numel() / param.shape[0]) ** 0.5
                else:
                    value = 0.05 * noise
                param.copy_(value)
            model.decoder.head.conv3.bias.fill_(1.0)  # keep the final ReLU mostly active
        return model.to(torch.device(device) if device is not None else "cpu").eval()

    # ------------------------------------------------------------------ network
    @property
    def device(self) -> torch.device:
        return self.decoder.head.conv3.weight.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network input B x 3 x h x w (h, w multiples of 32, ~[-1, 1]) -> B x h x w prediction (>= 0)."""
        hooked, grid = self.backbone(x)
        return self.decoder(hooked, grid)[:, 0]

    # ------------------------------------------------------------------ images in, depth out
    def transform(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 H x W x 3 -> network input 1 x 3 x h x w float32 on the CPU (see ``transforms``)."""
        return transform_image(image, self.net_size)

    @torch.inference_mode()
    def predict_batch(self, inputs: torch.Tensor, sizes: Sequence[Tuple[int, int]],
                      precision: str = "fp32") -> List[np.ndarray]:
        """Network inputs B x 3 x h x w (one shared size) -> B predictions at their image sizes.

        Args:
            inputs: transformed images (``transform``), any device.
            sizes: B ``(H, W)`` image sizes to resize each prediction back to (bicubic).
            precision: 'fp32', or 'fp16' / 'bf16' autocast (meant for CUDA).

        Returns:
            list of B ``H x W`` float32 NumPy arrays of relative inverse depth.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: use one of {sorted(PRECISIONS)}")
        if len(sizes) != inputs.shape[0]:
            raise ValueError(f"{inputs.shape[0]} inputs but {len(sizes)} sizes")
        device = self.device
        inputs = inputs.to(device, torch.float32, non_blocking=True)
        dtype = PRECISIONS[precision]
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with autocast:
            prediction = self(inputs)
        prediction = prediction.float()
        return [resize_prediction(prediction[i:i + 1], size)[0].cpu().numpy() for i, size in enumerate(sizes)]

    def predict(self, image: np.ndarray, precision: str = "fp32") -> np.ndarray:
        """RGB uint8 H x W x 3 -> H x W float32 relative inverse depth (larger = nearer)."""
        image = check_rgb_uint8(image)
        return self.predict_batch(self.transform(image), [image.shape[:2]], precision)[0]
