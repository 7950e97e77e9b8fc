"""Backbones: the ADM UNet (``AdmUnet2d``) and the ``BACKBONES`` registry used by configs."""

from .adm import AdmUnet2d

__all__ = ["AdmUnet2d", "BACKBONES"]

#: config ``backbone.name`` -> class
BACKBONES = {"AdmUnet2d": AdmUnet2d}
