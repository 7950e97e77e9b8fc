"""clean-fid's Inception-v3 as an ``ivid.metrics`` feature extractor, for each clean-fid mode.

Modes (``mode=``), reproducing ``cleanfid.features.build_feature_extractor`` and
``cleanfid.resize.build_resizer``:

* ``legacy_tensorflow`` (default): the TorchScript port of TensorFlow's
  "2015-12-05" Inception graph (``inception-2015-12-05.pt``, the network
  torch-fidelity and the original TF FID/IS code use), fed the S x S image; the
  network resizes to 299 x 299 inside, as TensorFlow did. Numbers match
  torch-fidelity / TF FID.
* ``clean``: the same network, fed images resized to 299 x 299 outside it with
  clean-fid's float32 PIL bicubic (:class:`~ivid.metrics.preprocess.CleanResize`,
  in the loader workers).
* ``legacy_pytorch``: pytorch-fid's port of the same weights, with a PyTorch
  bilinear resize to 299 (FID/KID only: that model exposes no logits).

Logits for IS (TorchScript modes) are the 2048-d pool features times the
1008-class output weights WITHOUT the bias, as the original TF Inception Score
code, torch-fidelity (``logits_unbiased``) and StyleGAN2-ADA
(``no_output_bias=True``) do.

Weights: ``inception-2015-12-05.pt`` is kept in the user's cache folder
``~/.cache/ivid`` (not clean-fid's ``/tmp``, where anyone could plant a TorchScript file that runs when loaded)
and downloaded there on first use with clean-fid's downloader (into a temporary name, then renamed);
``weights=PATH`` (``--inception_weights``) uses a local file instead. Offline,
:class:`~ivid.metrics.errors.MetricsError` says which file is needed, its URL
and where to put it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MetricsError
from .preprocess import CleanResize

MODES = ("legacy_tensorflow", "clean", "legacy_pytorch")
DEFAULT_MODE = "legacy_tensorflow"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
FEATURE_DIM = 2048
NUM_LOGITS = 1008
INCEPTION_SIZE = 299


def default_weights_dir() -> str:
    """Where ``inception-2015-12-05.pt`` is kept: ``~/.cache/ivid`` (``--inception_weights`` picks any file)."""
    return os.path.join(os.path.expanduser("~"), ".cache", "ivid")


def resolve_inception_weights(path: Optional[str] = None, download: bool = True) -> str:
    """Path of a readable ``inception-2015-12-05.pt``: ``path`` if given, else clean-fid's copy (fetched if missing).

    Raises:
        MetricsError: ``path`` does not exist, or the file is missing and cannot
            be downloaded; the message gives the file name, URL and destination.
    """
    if path is not None:
        if not os.path.isfile(path):
            raise MetricsError(f"--inception_weights {path!r}: no such file (expected {INCEPTION_FILE}, "
                               f"from {INCEPTION_URL})")
        return path
    folder = default_weights_dir()
    target = os.path.join(folder, INCEPTION_FILE)
    if os.path.isfile(target):
        return target
    if download:
        try:
            _download_with_cleanfid(folder)
            return target
        except Exception as exc:  # urllib/socket/OS errors: all mean "not fetched"
            reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "downloads disabled"
    raise MetricsError(
        f"the Inception weights {INCEPTION_FILE} are not in {os.path.abspath(folder)} and could not be "
        f"downloaded ({reason}). Fetch {INCEPTION_URL} on a machine with internet access, then either "
        f"copy it to {os.path.abspath(target)} or pass --inception_weights PATH (inception_weights=PATH).")


def _download_with_cleanfid(folder: str) -> None:
    """clean-fid's downloader into a temporary folder next to the target, then an atomic rename."""
    from cleanfid.downloads_helper import check_download_inception

    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".inception-download-", dir=folder)
    try:
        check_download_inception(fpath=staging)
        os.replace(os.path.join(staging, INCEPTION_FILE), os.path.join(folder, INCEPTION_FILE))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _find_output_weight(base: nn.Module) -> Optional[torch.Tensor]:
    """The ``1008 x 2048`` class weights of the TorchScript network (its ``output`` linear layer)."""
    for _, param in base.named_parameters():
        if tuple(param.shape) == (NUM_LOGITS, FEATURE_DIM):
            return param
    return None


class InceptionFeatureExtractor(nn.Module):
    """TorchScript Inception-v3 (``inception-2015-12-05.pt``) in clean-fid's ``legacy_tensorflow`` or ``clean`` mode.

    ``forward(x)``: ``x`` is ``N x 3 x S x S`` float in [0, 255] (``legacy_tensorflow``;
    any S) or ``N x 3 x 299 x 299`` after :attr:`cpu_transform` (``clean``).
    Returns ``N x 2048`` pool features. :meth:`forward_with_logits` also returns
    ``N x 1008`` bias-free logits.
    """

    def __init__(self, base: nn.Module, mode: str = DEFAULT_MODE):
        super().__init__()
        if mode not in ("legacy_tensorflow", "clean"):
            raise MetricsError(f"mode {mode!r}: the TorchScript Inception serves 'legacy_tensorflow' and 'clean'")
        self.base = base
        self.mode = mode
        self.name = f"{INCEPTION_FILE} (TorchScript, clean-fid)"
        self.cpu_transform = CleanResize(INCEPTION_SIZE) if mode == "clean" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "legacy_tensorflow":
            return self.base(x, return_features=True).reshape(x.shape[0], FEATURE_DIM)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            raise MetricsError(f"clean mode expects {INCEPTION_SIZE}x{INCEPTION_SIZE} inputs, got {tuple(x.shape)}")
        return self.base.layers((x - 128.0) / 128.0).reshape(x.shape[0], FEATURE_DIM)

    def forward_with_logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        weight = _find_output_weight(self.base)
        if weight is None:
            raise MetricsError(f"{INCEPTION_FILE}: no {NUM_LOGITS}x{FEATURE_DIM} output layer found; cannot compute IS")
        features = self.forward(x)
        return features, F.linear(features, weight.to(features.dtype))


class PytorchFidInception(nn.Module):
    """clean-fid's ``legacy_pytorch`` extractor: pytorch-fid's Inception port, bilinear resize to 299 inside.

    ``forward(x)``: ``N x 3 x S x S`` float in [0, 255] -> ``N x 2048``. No logits.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.name = "pt_inception-2015-12-05 (pytorch-fid, clean-fid)"
        self.cpu_transform = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        return self.network(x.clamp(0, 255) / 255.0)[0].reshape(x.shape[0], FEATURE_DIM)


def _load_pytorch_fid() -> nn.Module:
    from cleanfid.inception_pytorch import FID_WEIGHTS_URL, InceptionV3

    try:
        with warnings.catch_warnings():  # clean-fid builds torchvision's model with the old 'pretrained' argument
            warnings.simplefilter("ignore", UserWarning)
            return InceptionV3(output_blocks=[3], resize_input=False)
    except Exception as exc:  # download failures surface as urllib/OS errors
        hub = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise MetricsError(f"legacy_pytorch mode: could not load pytorch-fid's Inception weights "
                           f"({type(exc).__name__}: {exc}). Fetch {FID_WEIGHTS_URL} and put it in {hub}") from exc


def build_inception(mode: str = DEFAULT_MODE, weights: Optional[str] = None,
                    device: Optional[torch.device] = None) -> nn.Module:
    """clean-fid's Inception for ``mode`` (see the module docstring), in eval mode on ``device``.

    Args:
        weights: local ``inception-2015-12-05.pt`` (TorchScript modes only).

    Raises:
        MetricsError: unknown mode, unusable weights, or weights unavailable offline.
    """
    if mode not in MODES:
        raise MetricsError(f"unknown clean-fid mode {mode!r}; valid: {', '.join(MODES)}")
    device = torch.device("cpu") if device is None else device
    if mode == "legacy_pytorch":
        if weights is not None:
            raise MetricsError("--inception_weights applies to the TorchScript modes (legacy_tensorflow, clean), "
                               "not legacy_pytorch")
        return PytorchFidInception(_load_pytorch_fid()).eval().to(device)
    path = resolve_inception_weights(weights)
    try:
        with warnings.catch_warnings():  # recent torch flags TorchScript loading as deprecated; it is the file's format
            warnings.simplefilter("ignore", FutureWarning)
            base = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:  # a corrupt or foreign file
        raise MetricsError(f"{path}: not a loadable TorchScript {INCEPTION_FILE} ({type(exc).__name__}: {exc}); "
                           f"re-download it from {INCEPTION_URL}") from exc
    return InceptionFeatureExtractor(base, mode).eval().to(device)
