"""Small shared helpers: device choice, atomic file writes, image grids."""

from .device import resolve_device
from .io import atomic_write, atomic_save_npz, atomic_torch_save

__all__ = ["resolve_device", "atomic_write", "atomic_save_npz", "atomic_torch_save"]
