"""mirkit — music information retrieval in Rust, from Python.

A librosa-shaped API over mirkit's Rust crates: existing code changes one import.

    >>> import mirkit
    >>> y, sr = mirkit.load("song.mp3")                      # librosa.load semantics
    >>> S = mirkit.feature.melspectrogram(y=y, sr=sr)        # same numbers as librosa
    >>> S_db = mirkit.power_to_db(S, ref=np.max)
    >>> tagger = mirkit.Tagger("musicnn-mtt")               # loaded once, reused
    >>> tagger.tag("song.mp3", top_k=3)
    {'classical': 0.68, 'violin': 0.54, 'strings': 0.49}

Numbers match librosa 0.11 within the tolerances of mirkit's docs/parity.md. Results are
``float32`` (``complex64`` for the STFT), as librosa's are for the ``float32`` signals
``librosa.load`` returns; a ``float64`` input is converted once.

Inputs are read without copying when they are C-contiguous ``float32``; outputs are
handed to NumPy without copying. The GIL is released during all decoding and numeric
work. ``set_num_threads`` sizes the thread pool; it is safe to use after ``fork``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._native import (
    DecodeError,
    MirkitError,
    ModelError,
    ParameterError,
    get_num_threads,
    keep_freed_memory,
    set_num_threads,
)

__version__: str = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "DecodeError",
    "MirkitError",
    "ModelError",
    "ParameterError",
    "Tagger",
    "amplitude_to_db",
    "effects",
    "feature",
    "filters",
    "get_num_threads",
    "keep_freed_memory",
    "load",
    "models",
    "power_to_db",
    "resample",
    "set_num_threads",
    "shard_from_env",
    "stft",
]


def _f32(y: Any, name: str = "y") -> np.ndarray:
    """The array as C-contiguous float32: the same object when it already is (no copy)."""
    if isinstance(y, np.ndarray) and y.dtype == np.float32 and y.flags.c_contiguous:
        return y
    a = np.asarray(y)
    if a.dtype.kind not in "fiub":
        raise ParameterError(f"{name} must be real-valued, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _per_channel(fn: Callable[[np.ndarray], np.ndarray], y: Any) -> np.ndarray:
    """Applies ``fn`` to a mono signal, or to each signal of ``(..., n)`` and stacks."""
    y = _f32(y)
    if y.ndim == 1:
        return fn(y)
    if y.ndim == 0 or y.shape[-1] == 0:
        raise ParameterError(f"y must have at least one sample, got shape {y.shape}")
    lead = y.shape[:-1]
    flat = y.reshape(-1, y.shape[-1])
    outs = [fn(np.ascontiguousarray(row)) for row in flat]
    return np.stack(outs).reshape(lead + outs[0].shape)


def _reference(S: np.ndarray, ref: Any) -> Optional[float]:
    """librosa's ``ref``: a number, or a callable on the input (``np.max`` → None, the
    maximum computed in Rust)."""
    if ref is np.max or ref is np.amax or ref is max:
        return None
    if callable(ref):
        return float(ref(S))
    return float(ref)


def load(
    path: PathLike,
    *,
    sr: Optional[float] = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: Optional[float] = None,
    dtype: Any = np.float32,
    res_type: str = "soxr_hq",
) -> Tuple[np.ndarray, int]:
    """Loads an audio file as ``librosa.load`` does.

    Decodes WAV, FLAC, Ogg Vorbis, MP3, AAC/M4A and AIFF; seeks to ``offset`` seconds,
    keeps ``duration`` seconds, averages channels when ``mono`` and resamples to ``sr``
    (``None``: the file's own rate).

    Returns ``(y, sr)`` with ``y`` of shape ``(n,)`` (mono) or ``(channels, n)``.
    Raises ``FileNotFoundError`` for a missing file and ``DecodeError`` for one that
    cannot be decoded.
    """
    rate = None if sr is None else int(sr)
    if rate is not None and rate != sr:
        raise ParameterError(f"sr={sr!r}: must be a whole number of Hz")
    y, out_sr = _native.load(
        os.fspath(path),
        rate,
        bool(mono),
        float(offset),
        None if duration is None else float(duration),
        res_type,
    )
    if np.dtype(dtype) != np.float32:
        y = y.astype(dtype)
    return y, out_sr


def resample(
    y: np.ndarray,
    *,
    orig_sr: float,
    target_sr: float,
    res_type: str = "soxr_hq",
    fix: bool = True,
    scale: bool = False,
    axis: int = -1,
) -> np.ndarray:
    """Resamples ``y`` (last axis) from ``orig_sr`` to ``target_sr``, as
    ``librosa.resample``: the output has ``ceil(n * target_sr / orig_sr)`` samples;
    ``scale=True`` divides by ``sqrt(target_sr / orig_sr)``."""
    if axis not in (-1, np.ndim(y) - 1):
        raise ParameterError("mirkit resamples along the last axis only")
    if not fix:
        raise ParameterError("fix=False is not supported: the length is always fixed")
    o, t = int(orig_sr), int(target_sr)
    if o != orig_sr or t != target_sr:
        raise ParameterError("orig_sr and target_sr must be whole numbers of Hz")
    out = _per_channel(lambda x: _native.resample(x, o, t, res_type), y)
    if scale:
        out /= np.sqrt(t / o)
    return out


def stft(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    window: str = "hann",
    center: bool = True,
    dtype: Any = None,
    pad_mode: str = "constant",
) -> np.ndarray:
    """The short-time Fourier transform, as ``librosa.stft``: shape
    ``(..., 1 + n_fft // 2, frames)``, ``complex64``."""
    win = n_fft if win_length is None else int(win_length)
    hop = win // 4 if hop_length is None else int(hop_length)
    if not isinstance(window, str):
        raise ParameterError("window must be a name ('hann', 'hamming', 'blackman', ...)")
    out = _per_channel(
        lambda x: _native.stft(x, int(n_fft), hop, win, window, bool(center), pad_mode), y
    )
    return out if dtype is None else out.astype(dtype)


def power_to_db(
    S: np.ndarray, *, ref: Any = 1.0, amin: float = 1e-10, top_db: Optional[float] = 80.0
) -> np.ndarray:
    """``10 * log10(S / ref)``, floored at ``max - top_db``, as ``librosa.power_to_db``
    (any shape; ``ref`` a number or a callable such as ``np.max``)."""
    S = _f32(S, "S")
    return _native.power_to_db(
        S, _reference(S, ref), float(amin), None if top_db is None else float(top_db)
    )


def amplitude_to_db(
    S: np.ndarray, *, ref: Any = 1.0, amin: float = 1e-5, top_db: Optional[float] = 80.0
) -> np.ndarray:
    """``20 * log10(S / ref)``, floored at ``max - top_db``, as
    ``librosa.amplitude_to_db``."""
    S = _f32(np.abs(S) if np.iscomplexobj(S) else S, "S")
    return _native.amplitude_to_db(
        S, _reference(S, ref), float(amin), None if top_db is None else float(top_db)
    )


def models() -> Dict[str, str]:
    """The pretrained models compiled into the package: ``{name: description}``."""
    return dict(_native.models())


def shard_from_env(environ: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
    """This worker's ``(index, count)`` in a job array, 0-based: Slurm's
    ``SLURM_ARRAY_TASK_ID`` / ``SLURM_ARRAY_TASK_COUNT`` (task ids relative to
    ``SLURM_ARRAY_TASK_MIN``), or a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` with
    ``MIRKIT_SHARD_COUNT`` (set it to the Job's ``completions``); ``(0, 1)`` when neither
    is set. The same code as ``mirkit tag --shard auto`` (Rust)."""
    env = os.environ if environ is None else environ
    return _native.shard_from_env(dict(env))


class Tagger:
    """A pretrained music tagger, loaded once and reused across calls.

    ``model`` is a registry name (``mirkit.models()``; default ``"musicnn-mtt"``, musicnn
    0.1.0's MagnaTagATune model) or a ``.safetensors`` file. Inputs are a path or a mono
    array with its ``sr``.

    The instance is also the stateful callable that Ray Data's ``map_batches``, Daft's
    class UDFs and Spark's ``mapInArrow`` expect: ``tagger(batch)`` reads the ``"path"``
    column of a dict of columns and adds ``"scores"`` ``(n, tags)``, ``"top_tags"`` and,
    with ``embed=...``, ``"embedding"`` ``(n, dims)``, plus an ``"error"`` column (``""``
    when the file was fine; a bad file gets NaN scores and its error text instead of
    failing the whole batch). ``threads`` sets this process's thread count
    (``set_num_threads``), e.g. 1 per actor when an engine runs one actor per core.
    """

    def __init__(
        self,
        model: Optional[str] = None,
        *,
        embed: Optional[str] = None,
        top_k: int = 5,
        path_column: str = "path",
        threads: Optional[int] = None,
    ) -> None:
        if threads is not None:
            # process-wide: one Ray/Daft actor or Spark worker process per tagger
            set_num_threads(int(threads))
        self._model = _native.default_model() if model is None else os.fspath(model)
        self._native = _native.NativeTagger(self._model)
        self._embed = embed
        self._top_k = int(top_k)
        self._path_column = path_column
        self._tags = list(self._native.tags)

    def __reduce__(self) -> Any:
        # pickled by name: workers (Spark, multiprocessing) load the compiled-in weights
        return (
            _rebuild,
            (self._model, self._embed, self._top_k, self._path_column),
        )

    def __repr__(self) -> str:
        return f"mirkit.Tagger({self._model!r})"

    @property
    def name(self) -> str:
        """The model's name."""
        return self._native.name

    @property
    def tags(self) -> List[str]:
        """Tag names, in the order of the score vectors."""
        return list(self._tags)

    @property
    def sample_rate(self) -> int:
        """The sample rate the model runs at (inputs are resampled to it)."""
        return self._native.sample_rate

    @property
    def window_secs(self) -> float:
        """Seconds between the starts of successive analysis windows."""
        return self._native.window_secs

    def _run(self, x: Any, sr: Optional[float]) -> Tuple[np.ndarray, np.ndarray]:
        if isinstance(x, (str, os.PathLike)):
            if sr is not None:
                raise ParameterError("sr is for arrays; a file's own rate is used")
            return self._native.tag_file(os.fspath(x))
        if sr is None:
            raise ParameterError("an array needs its sample rate: tag(y, sr)")
        y = _f32(x)
        if y.ndim != 1:
            raise ParameterError(f"y must be mono (1-D), got shape {y.shape}")
        return self._native.tag_samples(y, int(sr))

    def scores(self, x: Any, sr: Optional[float] = None) -> np.ndarray:
        """Scores averaged over the windows, ``(len(tags),)``."""
        return self._run(x, sr)[0]

    def taggram(self, x: Any, sr: Optional[float] = None) -> np.ndarray:
        """Scores per window, ``(windows, len(tags))``; window ``i`` starts at
        ``i * window_secs`` seconds."""
        return self._run(x, sr)[1]

    def tag(
        self, x: Any, sr: Optional[float] = None, *, top_k: Optional[int] = None
    ) -> Dict[str, float]:
        """``{tag: score}`` for a path or a mono array: every tag in model order, or the
        ``top_k`` best, best first."""
        s = self.scores(x, sr)
        return self._as_dict(s, top_k)

    def _as_dict(self, s: np.ndarray, top_k: Optional[int]) -> Dict[str, float]:
        if top_k is None:
            return {t: float(v) for t, v in zip(self._tags, s)}
        order = np.argsort(-s, kind="stable")[: int(top_k)]
        return {self._tags[i]: float(s[i]) for i in order}

    def embed(self, x: Any, sr: Optional[float] = None, *, layers: str = "penultimate") -> np.ndarray:
        """The embedding of a path or a mono array, pooled over the model's windows:
        ``layers="penultimate"`` (the layer before the output, mean over windows),
        ``"all"`` (every layer pooled and concatenated, Choi et al. 2017, mean over
        windows), ``"all-max"`` (every layer, maximum over windows) or ``"all-mean-max"``
        (both, concatenated: twice the width of ``"all"``)."""
        if isinstance(x, (str, os.PathLike)):
            if sr is not None:
                raise ParameterError("sr is for arrays; a file's own rate is used")
            return self._native.embed_file(os.fspath(x), layers)
        if sr is None:
            raise ParameterError("an array needs its sample rate: embed(y, sr)")
        y = _f32(x)
        if y.ndim != 1:
            raise ParameterError(f"y must be mono (1-D), got shape {y.shape}")
        return self._native.embed_samples(y, int(sr), layers)

    def thumbnail(
        self, path: PathLike, *, seconds: float = 30.0, repetition: float = 0.0
    ) -> Tuple[float, float]:
        """The most representative ``seconds`` of a file (its thumbnail) as
        ``(start, end)`` in seconds: the segment whose windows are most typical of the
        whole track, plus ``repetition`` × how strongly it recurs (``mirkit thumbnail``)."""
        start, end, _ = self._native.thumbnail(os.fspath(path), float(seconds), float(repetition))
        return start, end

    def tag_batch(
        self,
        paths: Iterable[PathLike],
        *,
        top_k: Optional[int] = None,
        on_error: str = "raise",
    ) -> List[Optional[Dict[str, float]]]:
        """Tags many files in parallel (one model, every core). ``on_error="raise"``
        raises ``MirkitError`` naming the first bad file; ``"skip"`` puts ``None`` in its
        place."""
        if on_error not in ("raise", "skip"):
            raise ParameterError("on_error must be 'raise' or 'skip'")
        ps = [os.fspath(p) for p in paths]
        out: List[Optional[Dict[str, float]]] = []
        for p, (s, _, err) in zip(ps, self._native.batch(ps, True, None)):
            if err is not None:
                if on_error == "raise":
                    raise MirkitError(err)
                out.append(None)
            else:
                out.append(self._as_dict(np.asarray(s, dtype=np.float32), top_k))
        return out

    def embed_batch(
        self, paths: Iterable[PathLike], *, layers: str = "penultimate"
    ) -> np.ndarray:
        """Embeddings of many files in parallel, ``(n, dims)``; raises on the first bad
        file."""
        ps = [os.fspath(p) for p in paths]
        rows = []
        for s, e, err in self._native.batch(ps, False, layers):
            if err is not None:
                raise MirkitError(err)
            rows.append(e)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """A batch of rows as a dict of columns (Ray Data's numpy batch format) → the same
        dict with ``scores``, ``top_tags``, ``error`` and, with ``embed=``, ``embedding``
        added. Files are processed in parallel on this worker's cores."""
        col = batch[self._path_column]
        ps = [os.fspath(p) for p in np.asarray(col, dtype=object).tolist()]
        res = self._native.batch(ps, True, self._embed)
        n, t = len(ps), len(self._tags)
        scores = np.full((n, t), np.nan, dtype=np.float32)
        errors = np.empty(n, dtype=object)
        top = np.empty(n, dtype=object)
        emb_rows: List[Optional[List[float]]] = []
        for i, (s, e, err) in enumerate(res):
            errors[i] = "" if err is None else err
            if s is not None:
                scores[i] = s
                top[i] = ",".join(self._as_dict(scores[i], self._top_k))
            else:
                top[i] = ""
            emb_rows.append(e)
        out = dict(batch)
        out["scores"] = scores
        out["top_tags"] = top
        out["error"] = errors
        if self._embed is not None:
            dims = next((len(e) for e in emb_rows if e is not None), 0)
            emb = np.full((n, dims), np.nan, dtype=np.float32)
            for i, e in enumerate(emb_rows):
                if e is not None:
                    emb[i] = e
            out["embedding"] = emb
        return out


def _rebuild(model: str, embed: Optional[str], top_k: int, path_column: str) -> Tagger:
    return Tagger(model, embed=embed, top_k=top_k, path_column=path_column)


from . import effects, feature, filters  # noqa: E402  (they import the helpers above)
