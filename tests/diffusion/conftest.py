"""Stub backbones with known outputs for the framework / sampler tests, exposed as the ``stubs`` fixture."""

import types
from typing import List, Optional

import numpy as np
import pytest
import torch
from torch import nn


class StubBackbone(nn.Module):
    """Minimal backbone interface: image_size, in/out channels, num_classes; records every call."""

    def __init__(self, image_size=8, in_channels=4, out_channels=4, num_classes: Optional[int] = 10,
                 has_null_class=True):
        super().__init__()
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.num_classes, self.has_null_class = num_classes, has_null_class
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device
        self.calls: List[dict] = []

    def record(self, x, t, classes):
        self.calls.append({"x": x.clone(), "t": t.clone(),
                           "classes": None if classes is None else classes.clone()})

    def forward(self, x, t, classes=None):
        self.record(x, t, classes)
        return torch.zeros(x.shape[0], self.out_channels, *x.shape[2:], dtype=x.dtype, device=x.device)


class ClassValueBackbone(StubBackbone):
    """eps = (class + 1) everywhere for labelled rows, NULL_VALUE for null (-1) rows or classes=None."""

    NULL_VALUE = -2.0

    def forward(self, x, t, classes=None):
        self.record(x, t, classes)
        n = x.shape[0]
        if classes is None:
            values = torch.full((n,), self.NULL_VALUE)
        else:
            values = torch.where(classes < 0, torch.tensor(self.NULL_VALUE), classes.float() + 1)
        return values.reshape(n, 1, 1, 1).expand(n, self.out_channels, *x.shape[2:]).to(x.dtype).clone()


class KnownX0Backbone(StubBackbone):
    """Returns the eps for which the predicted x_0 of the first out_channels of x equals ``target_x0``.

    eps = (sqrt(1/abar_t) x_t - x0*) / sqrt(1/abar_t - 1), computed in float64.
    """

    def __init__(self, target_x0: torch.Tensor, alphas_cumprod: np.ndarray, **kwargs):
        super().__init__(image_size=target_x0.shape[-1], out_channels=target_x0.shape[1], **kwargs)
        self.target_x0 = target_x0
        self.abar = torch.from_numpy(alphas_cumprod)

    def forward(self, x, t, classes=None):
        self.record(x, t, classes)
        abar = self.abar[t].reshape(-1, 1, 1, 1)
        x_t = x[:, :self.out_channels].double()
        eps = (torch.sqrt(1 / abar) * x_t - self.target_x0.double()) / torch.sqrt(1 / abar - 1)
        return eps.to(x.dtype)


class TinyConvBackbone(StubBackbone):
    """A cheap deterministic eps model with parameters: conv + a timestep/class dependent bias."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        g = torch.Generator().manual_seed(123)
        self.conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.1)

    def forward(self, x, t, classes=None):
        bias = (t.float() / 1000).reshape(-1, 1, 1, 1)
        if classes is not None:
            bias = bias + 0.01 * classes.float().reshape(-1, 1, 1, 1)
        return self.conv(x) + bias


@pytest.fixture
def stubs():
    """Namespace of the stub backbone classes above."""
    return types.SimpleNamespace(StubBackbone=StubBackbone, ClassValueBackbone=ClassValueBackbone,
                                 KnownX0Backbone=KnownX0Backbone, TinyConvBackbone=TinyConvBackbone)
