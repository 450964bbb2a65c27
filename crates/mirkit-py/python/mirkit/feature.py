"""Spectral features with ``librosa.feature``'s names, parameters and defaults."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import ParameterError, _f32, _native, _per_channel

__all__ = ["melspectrogram", "mfcc"]


def _mel_args(kwargs: dict) -> tuple:
    n_mels = int(kwargs.pop("n_mels", 128))
    fmin = float(kwargs.pop("fmin", 0.0))
    fmax = kwargs.pop("fmax", None)
    htk = bool(kwargs.pop("htk", False))
    norm = kwargs.pop("norm", "slaney")
    kwargs.pop("dtype", None)
    if norm is not None and norm != "slaney":
        raise ParameterError(f"norm={norm!r}: mirkit supports norm='slaney' or None")
    if kwargs:
        raise ParameterError(f"unsupported arguments: {', '.join(sorted(kwargs))}")
    return (n_mels, fmin, None if fmax is None else float(fmax), htk, norm)


def melspectrogram(
    *,
    y: Optional[np.ndarray] = None,
    sr: float = 22050,
    S: Optional[np.ndarray] = None,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: Optional[int] = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    **kwargs: Any,
) -> np.ndarray:
    """A mel spectrogram, as ``librosa.feature.melspectrogram``: from a signal ``y``
    (STFT → ``|·|^power`` → mel, in one pass) or from a spectrogram ``S`` of shape
    ``(..., 1 + n_fft // 2, frames)``. Keyword arguments of ``librosa.filters.mel``
    (``n_mels=128``, ``fmin=0.0``, ``fmax=None``, ``htk=False``, ``norm='slaney'``) are
    accepted. Shape ``(..., n_mels, frames)``, ``float32``."""
    mel = _mel_args(dict(kwargs))
    rate = int(sr)
    if S is not None:
        S = _f32(S, "S")
        if S.ndim < 2:
            raise ParameterError(f"S must be (..., 1 + n_fft // 2, frames), got {S.shape}")
        nfft = 2 * (S.shape[-2] - 1)
        lead = S.shape[:-2]
        flat = S.reshape((-1,) + S.shape[-2:])
        outs = [
            _native.mel_apply(np.ascontiguousarray(s), rate, nfft, *mel) for s in flat
        ]
        return outs[0] if not lead else np.stack(outs).reshape(lead + outs[0].shape)
    if y is None:
        raise ParameterError("melspectrogram needs y or S")
    win = int(n_fft) if win_length is None else int(win_length)
    return _per_channel(
        lambda x: _native.features(
            x, rate, int(n_fft), int(hop_length), win, window, bool(center), pad_mode,
            float(power), mel,
        ),
        y,
    )


def mfcc(
    *,
    y: Optional[np.ndarray] = None,
    sr: float = 22050,
    S: Optional[np.ndarray] = None,
    n_mfcc: int = 20,
    dct_type: int = 2,
    norm: Optional[str] = "ortho",
    lifter: float = 0,
    mel_norm: Optional[str] = "slaney",
    **kwargs: Any,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients, as ``librosa.feature.mfcc``: DCT-II
    (orthonormal) of ``power_to_db(melspectrogram(y, sr, **kwargs))`` (``ref=1``,
    ``top_db=80``) or of a log-power mel spectrogram ``S``; ``lifter`` as librosa.
    Shape ``(..., n_mfcc, frames)``."""
    if dct_type != 2 or norm != "ortho":
        raise ParameterError("mirkit computes the orthonormal DCT-II (dct_type=2, norm='ortho')")
    if S is not None:
        S = _f32(S, "S")
        if S.ndim < 2:
            raise ParameterError(f"S must be (..., n_mels, frames), got {S.shape}")
        lead = S.shape[:-2]
        flat = S.reshape((-1,) + S.shape[-2:])
        outs = [
            _native.mfcc_from_db(np.ascontiguousarray(s), int(n_mfcc), float(lifter))
            for s in flat
        ]
        return outs[0] if not lead else np.stack(outs).reshape(lead + outs[0].shape)
    if y is None:
        raise ParameterError("mfcc needs y or S")
    kw = dict(kwargs)
    n_fft = int(kw.pop("n_fft", 2048))
    hop = int(kw.pop("hop_length", 512))
    win = kw.pop("win_length", None)
    win = n_fft if win is None else int(win)
    window = kw.pop("window", "hann")
    center = bool(kw.pop("center", True))
    pad_mode = kw.pop("pad_mode", "constant")
    power = float(kw.pop("power", 2.0))
    kw["norm"] = mel_norm
    mel = _mel_args(kw)
    rate = int(sr)
    return _per_channel(
        lambda x: _native.features(
            x, rate, n_fft, hop, win, window, center, pad_mode, power, mel,
            (1.0, 1e-10, 80.0), (int(n_mfcc), float(lifter)),
        ),
        y,
    )
