"""Filterbanks with ``librosa.filters``' names, parameters and defaults."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _native

__all__ = ["mel"]


def mel(
    *,
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: Optional[float] = None,
    htk: bool = False,
    norm: Optional[str] = "slaney",
    dtype: Any = np.float32,
) -> np.ndarray:
    """The mel filterbank of ``librosa.filters.mel``, shape ``(n_mels, 1 + n_fft // 2)``
    (built in double precision, rounded once, as librosa)."""
    fb = _native.mel_filters(
        int(sr), int(n_fft), int(n_mels), float(fmin),
        None if fmax is None else float(fmax), bool(htk), norm,
    )
    return fb if np.dtype(dtype) == np.float32 else fb.astype(dtype)
