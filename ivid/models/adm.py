"""ADM UNet backbone (``AdmUnet2d``): the improved-DDPM / guided-diffusion UNet of IVID.

The module tree, and so every state_dict key, shape and dtype, matches the
released IVID checkpoints (see docs/design.md#backbone and the schema fixtures).
Numerics follow the reference: GroupNorm in float32, the timestep and class
embedding in float32, the torso (three block stacks) in ``model.dtype`` and
the ``out`` head in float32. Attention uses
``torch.nn.functional.scaled_dot_product_attention`` on the reference's
"legacy" head layout; it equals ``softmax(q k^T / sqrt(ch)) v`` with the
softmax accumulated in float32 by the fused kernels.

``use_fp16`` on the CPU: PyTorch's native float16 convolution is ~30x slower
than float32 there, so float16 convolutions on CPU tensors run in float32 on
the (exactly representable) half values and round the result to half
(``ivid.models.layers.Conv2d``): half-convolution semantics with float32
accumulation. CUDA runs the native half kernels.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .fp16 import cast_state_dict_like, convert_torso
from .layers import Conv1d, Conv2d, GroupNorm32, PosEncoding, zero_module

__all__ = ["AdmUnet2d"]


class _ResBlock(nn.Module):
    """Residual block with FiLM-style timestep conditioning and optional up/down sampling.

    ``forward(x, emb)``: ``x`` ``(N, channels, H, W)``, ``emb`` ``(N, emb_channels)``
    -> ``(N, out_channels, H', W')`` with ``H' = 2H`` (up), ``H/2`` (down) or ``H``.
    """

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: Optional[int] = None,
                 use_scale_shift_norm: bool = True, up: bool = False, down: bool = False, num_groups: int = 32):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.up, self.down = up, down
        self.in_layers = nn.Sequential(
            GroupNorm32(num_groups, channels), nn.SiLU(), Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(num_groups, out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            zero_module(Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else Conv2d(channels, out_channels, 1))

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.avg_pool2d(x, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm_in, act_in, conv_in = self.in_layers
        h = act_in(norm_in(x))
        if self.up or self.down:
            h, x = self._resample(h), self._resample(x)
        h = conv_in(h)
        emb_out = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm_out, act_out, drop_out, conv_out = self.out_layers
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = norm_out(h) * (1 + scale) + shift
        else:
            h = norm_out(h + emb_out)
        h = conv_out(drop_out(act_out(h)))
        return self.skip_connection(x) + h


class _AttentionBlock(nn.Module):
    """Spatial self-attention over all ``H*W`` positions, residual.

    ``qkv`` is a 1x1 ``Conv1d(c, 3c)`` whose output is read in the "legacy"
    layout: viewed as ``(N*heads, 3*ch, T)`` and split into q, k, v. Scale
    ``1/sqrt(ch)`` (= ``ch^-1/4`` on both q and k in the reference).
    """

    def __init__(self, channels: int, num_heads: int, num_groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.norm = GroupNorm32(num_groups, channels)
        self.qkv = Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        qkv = self.qkv(self.norm(flat))
        length = qkv.shape[-1]
        # legacy layout: per head, [q (ch), k (ch), v (ch)] along the channel axis
        # (made contiguous so that q, k, v have unit stride along ch: the fused SDPA kernels need it)
        qkv = qkv.reshape(n, self.num_heads, 3, c // self.num_heads, length).transpose(-1, -2).contiguous()
        q, k, v = qkv.unbind(2)  # each (n, heads, T, ch)
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.transpose(-1, -2).reshape(n, c, length)
        return (flat + self.proj_out(h)).reshape(x.shape)


class _Downsample(nn.Module):
    """Stride-2 3x3 conv (``op``) or 2x2 average pool; used only when ``resblock_updown=False``."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.op = (Conv2d(channels, out_channels, 3, stride=2, padding=1) if use_conv
                   else nn.AvgPool2d(kernel_size=2, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Upsample(nn.Module):
    """Nearest x2 then an optional 3x3 conv (``conv``); used only when ``resblock_updown=False``."""

    def __init__(self, channels: int, use_conv: bool, out_channels: Optional[int] = None):
        super().__init__()
        out_channels = out_channels or channels
        self.conv = Conv2d(channels, out_channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x if self.conv is None else self.conv(x)


class _EmbedSequential(nn.Sequential):
    """Sequential that hands the timestep embedding to the residual blocks."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, _ResBlock) else layer(x)
        return x


def _normal_embedding(num: int, dim: int) -> nn.Embedding:
    """``nn.Embedding(num, dim)`` with its N(0, 1) init skipped on the 'meta' device.

    (Random init on 'meta' makes torch import its compiler stack, seconds per process.)
    """
    weight = torch.empty(num, dim)
    if weight.device.type != "meta":
        nn.init.normal_(weight)
    return nn.Embedding.from_pretrained(weight, freeze=False)


class AdmUnet2d(nn.Module):
    """The ADM UNet predicting eps.

    Args (exactly the ``backbone.args`` keys of the configs):
        image_size: input side length (square images).
        in_channels / out_channels: image channels in / out (4 = RGBD; 10 for the
            InpaintCFG model, 8 for the super-resolution model).
        model_channels: base width ``mc``; the embedding width is ``4 * mc``.
        num_res_blocks: residual blocks per level.
        attention_resolutions: feature-map side lengths (absolute, e.g. 32, 16, 8)
            at which attention follows a residual block.
        dropout: dropout probability inside the residual blocks.
        channel_mult: width multiplier of each level.
        conv_resample: learnable resampling convs (only used without resblock_updown).
        num_classes: number of class labels, or None for an unconditional model.
        has_null_class: label -1 means "no class" (zero class embedding).
        use_fp16: keep the torso convolutions in float16 (see ``ivid.models.fp16``).
        num_groups: GroupNorm groups.
        num_heads: attention heads (used when ``num_head_channels == -1``).
        num_head_channels: channels per head (heads = channels / this) or -1.
        use_scale_shift_norm: FiLM ``norm(h) * (1 + scale) + shift`` (else additive).
        resblock_updown: resample with residual blocks (released configs) instead
            of plain up/down-sampling layers.

    ``forward(x, t, classes=None)``:
        x: ``(N, in_channels, H, W)`` float, any device; cast to ``model.dtype`` for the torso.
        t: ``(N,)`` timestep indices (0-based, int64; floats are accepted) or a scalar.
        classes: ``(N,)`` int64 labels, -1 = null class (zero embedding, needs
            ``has_null_class``), or None (zero class embedding). Ignored by
            unconditional models (``num_classes=None``).
        Returns ``(N, out_channels, H, W)`` eps prediction in ``x.dtype``.

    Attributes: ``image_size``, ``in_channels``, ``out_channels``, ``num_classes``,
    ``has_null_class``, ``backbone_args`` (the constructor arguments) and ``dtype``
    (the torso dtype: float16 iff ``use_fp16``; follows ``model.double()`` etc.).
    """

    def __init__(self, image_size: int, in_channels: int, model_channels: int, out_channels: int,
                 num_res_blocks: int, attention_resolutions: Sequence[int], dropout: float = 0.0,
                 channel_mult: Sequence[int] = (1, 2, 4, 8), conv_resample: bool = True,
                 num_classes: Optional[int] = None, has_null_class: bool = False, use_fp16: bool = False,
                 num_groups: int = 32, num_heads: Optional[int] = 1, num_head_channels: int = -1,
                 use_scale_shift_norm: bool = True, resblock_updown: bool = True):
        super().__init__()
        if num_head_channels == -1 and not num_heads:
            raise ValueError("AdmUnet2d: set num_head_channels or num_heads")
        self.backbone_args: Dict[str, Any] = dict(
            image_size=image_size, in_channels=in_channels, model_channels=model_channels,
            out_channels=out_channels, num_res_blocks=num_res_blocks,
            attention_resolutions=list(attention_resolutions), dropout=dropout, channel_mult=list(channel_mult),
            conv_resample=conv_resample, num_classes=num_classes, has_null_class=has_null_class,
            use_fp16=use_fp16, num_groups=num_groups, num_heads=num_heads, num_head_channels=num_head_channels,
            use_scale_shift_norm=use_scale_shift_norm, resblock_updown=resblock_updown)
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.model_channels, self.num_classes, self.has_null_class = model_channels, num_classes, has_null_class
        self._block_kwargs = dict(dropout=dropout, use_scale_shift_norm=use_scale_shift_norm, num_groups=num_groups)
        self._attn_kwargs = dict(num_heads=num_heads, num_head_channels=num_head_channels, num_groups=num_groups)

        emb_channels = 4 * model_channels
        self.time_embed = nn.Sequential(PosEncoding(model_channels), nn.Linear(model_channels, emb_channels),
                                        nn.SiLU(), nn.Linear(emb_channels, emb_channels))
        if num_classes is not None:
            self.label_emb = _normal_embedding(num_classes, emb_channels)

        resolutions = set(attention_resolutions)
        skip_channels = self._build_input_blocks(channel_mult, num_res_blocks, resolutions,
                                                 conv_resample, resblock_updown)
        ch = skip_channels[-1]
        self.middle_block = _EmbedSequential(
            self._res(ch, ch), self._attn(ch), self._res(ch, ch))
        ch = self._build_output_blocks(ch, skip_channels, channel_mult, num_res_blocks, resolutions,
                                       conv_resample, resblock_updown)
        self.out = nn.Sequential(GroupNorm32(num_groups, ch), nn.SiLU(),
                                 zero_module(Conv2d(ch, out_channels, 3, padding=1)))
        if use_fp16:
            convert_torso(self, torch.float16)

    # -- construction helpers -------------------------------------------------------------
    def _res(self, channels: int, out_channels: int, up: bool = False, down: bool = False) -> _ResBlock:
        return _ResBlock(channels, 4 * self.model_channels, out_channels=out_channels, up=up, down=down,
                         **self._block_kwargs)

    def _attn(self, channels: int) -> _AttentionBlock:
        head_channels = self._attn_kwargs["num_head_channels"]
        if head_channels == -1:
            heads = self._attn_kwargs["num_heads"]
        else:
            if channels % head_channels:
                raise ValueError(f"AdmUnet2d: {channels} channels are not a multiple of "
                                 f"num_head_channels={head_channels}")
            heads = channels // head_channels
        return _AttentionBlock(channels, heads, self._attn_kwargs["num_groups"])

    def _build_input_blocks(self, channel_mult, num_res_blocks, resolutions, conv_resample, resblock_updown):
        ch = int(channel_mult[0] * self.model_channels)
        self.input_blocks = nn.ModuleList([_EmbedSequential(Conv2d(self.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        size = self.image_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                out_ch = int(mult * self.model_channels)
                layers: List[nn.Module] = [self._res(ch, out_ch)]
                ch = out_ch
                if size in resolutions:
                    layers.append(self._attn(ch))
                self.input_blocks.append(_EmbedSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                down = self._res(ch, ch, down=True) if resblock_updown else _Downsample(ch, conv_resample)
                self.input_blocks.append(_EmbedSequential(down))
                skip_channels.append(ch)
                size //= 2
        self._bottom_size = size
        return skip_channels

    def _build_output_blocks(self, ch, skip_channels, channel_mult, num_res_blocks, resolutions,
                             conv_resample, resblock_updown) -> int:
        skip_channels = list(skip_channels)
        self.output_blocks = nn.ModuleList()
        size = self._bottom_size
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                out_ch = int(mult * self.model_channels)
                layers: List[nn.Module] = [self._res(ch + skip_channels.pop(), out_ch)]
                ch = out_ch
                if size in resolutions:
                    layers.append(self._attn(ch))
                if level and i == num_res_blocks:
                    layers.append(self._res(ch, ch, up=True) if resblock_updown
                                  else _Upsample(ch, conv_resample))
                    size *= 2
                self.output_blocks.append(_EmbedSequential(*layers))
        return ch

    # -- dtype ------------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """Torso dtype (dtype of the first input convolution): float16 iff use_fp16, unless cast since."""
        return self.input_blocks[0][0].weight.dtype

    @dtype.setter
    def dtype(self, value: torch.dtype) -> None:
        """Setting ``model.dtype`` casts the torso convolutions to ``value`` (as ``use_fp16`` does for float16)."""
        convert_torso(self, value)

    # -- state_dict ---------------------------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that first casts every tensor to this model's dtype for that key.

        float32 and float16 checkpoints therefore load into either variant (use_fp16
        or not), also with ``assign=True``.
        """
        state_dict = cast_state_dict_like(state_dict, self.state_dict())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- forward ----------------------------------------------------------------------------
    def embed(self, t: torch.Tensor, classes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Timestep (+ class) embedding ``(N, 4 * model_channels)`` entering the torso."""
        emb = self.time_embed(t)
        class_emb = self._class_embedding(classes, emb)
        return emb if class_emb is None else emb + class_emb

    def _class_embedding(self, classes, emb: torch.Tensor) -> Optional[torch.Tensor]:
        if self.num_classes is None or classes is None:
            return None
        classes = torch.as_tensor(classes, device=emb.device).long()
        if classes.ndim == 0:
            classes = classes.expand(emb.shape[0])
        is_null = classes < 0
        if not self.has_null_class and bool(is_null.any()):
            raise ValueError("AdmUnet2d: class label -1 (null class) needs has_null_class=True")
        class_emb = self.label_emb(classes.clamp(min=0))
        return class_emb * (~is_null)[:, None].to(class_emb.dtype)

    def forward(self, x: torch.Tensor, t: Union[torch.Tensor, int], classes: Optional[torch.Tensor] = None):
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t, classes)
        h = x.to(self.dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        out_conv = self.out[2]
        return self.out(h.to(out_conv.weight.dtype)).to(x.dtype)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.backbone_args.items())
