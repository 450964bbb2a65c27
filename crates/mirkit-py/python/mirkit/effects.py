"""Time and pitch effects with ``librosa.effects``' names, parameters and defaults."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ParameterError, _native, _per_channel

__all__ = ["pitch_shift", "time_stretch"]


def _no_stft_kwargs(kwargs: dict) -> None:
    if kwargs:
        raise ParameterError(
            "mirkit's phase vocoder uses librosa's STFT defaults (n_fft=2048, "
            f"hop_length=512); unsupported arguments: {', '.join(sorted(kwargs))}"
        )


def time_stretch(y: np.ndarray, *, rate: float, phase: str = "librosa", **kwargs: Any) -> np.ndarray:
    """Stretches ``y`` in time by ``rate`` (> 1: faster, shorter) with a phase vocoder, as
    ``librosa.effects.time_stretch``; the output has ``round(n / rate)`` samples.
    ``phase="identity"`` (mirkit's addition) locks phases around spectral peaks
    (Laroche & Dolson 1999), with less phasiness."""
    _no_stft_kwargs(kwargs)
    return _per_channel(lambda x: _native.time_stretch(x, float(rate), phase), y)


def pitch_shift(
    y: np.ndarray,
    *,
    sr: float,
    n_steps: float,
    bins_per_octave: int = 12,
    res_type: str = "soxr_hq",
    scale: bool = False,
    phase: str = "librosa",
    **kwargs: Any,
) -> np.ndarray:
    """Shifts the pitch of ``y`` by ``n_steps`` steps of ``1 / bins_per_octave`` octave,
    keeping its length, as ``librosa.effects.pitch_shift`` (time stretch, then
    resampling)."""
    _no_stft_kwargs(kwargs)
    if not (np.isfinite(sr) and sr > 0):
        raise ParameterError(f"sr={sr!r}: must be a positive number")
    if scale:
        raise ParameterError("scale=True is not supported")
    if not res_type.startswith(("soxr", "kaiser", "polyphase", "sinc")):
        raise ParameterError(f"res_type={res_type!r}: mirkit resamples with its windowed sinc")
    return _per_channel(
        lambda x: _native.pitch_shift(x, float(n_steps), int(bins_per_octave), phase), y
    )
