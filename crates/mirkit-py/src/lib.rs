//! # mirkit-py — the Python package's native module (`mirkit._native`)
//!
//! PyO3 bindings of the mirkit workspace, built by maturin into one abi3 wheel per
//! platform (CPython ≥ 3.9). The librosa-shaped Python API (`mirkit.load`,
//! `mirkit.feature.melspectrogram`, `mirkit.Tagger`, …) lives in `python/mirkit/` and
//! calls the functions here; this module keeps to plain, positional, typed entry points.
//!
//! ```text
//! $ maturin develop --release -m crates/mirkit-py/Cargo.toml
//! >>> import mirkit
//! >>> y, sr = mirkit.load("song.mp3")
//! >>> S = mirkit.feature.melspectrogram(y=y, sr=sr)
//! ```
//!
//! ## Design decisions
//! * **No copies at the boundary.** Inputs arrive as read-only NumPy views of C-contiguous
//!   `float32` data (the Python layer converts anything else once, as librosa would);
//!   outputs are Rust `Vec`s handed to NumPy, which frees them (`PyArray::from_vec` keeps
//!   the allocation), reshaped without copying.
//! * **The GIL is released** around all decoding and numeric work, so Python threads
//!   (Ray actors with concurrency, thread pools) run mirkit in parallel.
//! * **Threads and `fork`.** All work runs in a rayon pool owned by this module and
//!   sized by `set_num_threads` (default: `RAYON_NUM_THREADS`, else every core). The
//!   pool remembers the process id that built it: a child made by `fork` (multiprocessing,
//!   Ray, Spark workers) finds a pool whose threads do not exist there and builds its own
//!   instead of deadlocking on the parent's, which rayon's global pool would do.
//! * **Errors are exceptions with the Rust error's text**: `FileNotFoundError` for a
//!   missing file, otherwise `MirkitError` subclasses (`ParameterError`, `DecodeError`,
//!   `ModelError`); nothing panics into the interpreter — a panic inside the Rust code
//!   becomes `pyo3.PanicException`, never an abort.

#![warn(missing_docs)]
// the facade's error (≥ 128 bytes) crosses each closure once per call, on its way to a
// Python exception: its size costs nothing here
#![allow(clippy::result_large_err)]

use mirkit::augment::PhaseMode;
use mirkit::dsp::{DbConfig, DbRef, MelConfig, MelFilterbank, PadMode, WindowKind};
use mirkit::io::{LoadOptions, ResampleQuality};
use mirkit::rosa::{Mel, Spectrogram};
use mirkit::transfer::embed::Layers;
use numpy::ndarray::{Array1, Array2, ArrayD, IxDyn};
use numpy::{Complex32, IntoPyArray, PyArray1, PyArray2, PyArrayDyn};
use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError};
use pyo3::prelude::*;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

create_exception!(
    _native,
    MirkitError,
    PyException,
    "Base class of mirkit's errors (the text is the Rust error's, cause included)."
);
create_exception!(
    _native,
    ParameterError,
    MirkitError,
    "A parameter or an input signal mirkit cannot use (librosa raises ParameterError too)."
);
create_exception!(
    _native,
    DecodeError,
    MirkitError,
    "A file that cannot be decoded: unsupported, corrupt, truncated, empty or silent of samples."
);
create_exception!(
    _native,
    ModelError,
    MirkitError,
    "A model that cannot be loaded or run: an unknown name, wrong weights, bad input."
);

// ---------------------------------------------------------------------------------------
// errors

/// The error's text followed by each cause the text does not already contain.
fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Maps a facade error onto the Python exception a caller would expect.
fn to_py(e: mirkit::Error) -> PyErr {
    use mirkit::io::IoError;
    use mirkit::Error as E;
    let text = message(&e);
    match &e {
        E::Audio(IoError::Open { cause: source, .. }) => {
            if source.kind() == std::io::ErrorKind::NotFound {
                PyFileNotFoundError::new_err(text)
            } else {
                PyOSError::new_err(text)
            }
        }
        E::Audio(IoError::InvalidParameter { .. } | IoError::NonFinite { .. })
        | E::DspParams(_)
        | E::Dsp { .. }
        | E::Augment(_)
        | E::Core(_)
        | E::Invalid(_) => ParameterError::new_err(text),
        E::Audio(IoError::Write { .. }) => PyOSError::new_err(text),
        E::Audio(_) => DecodeError::new_err(text),
        E::Model(_) | E::ModelOnFile { .. } => ModelError::new_err(text),
        _ => MirkitError::new_err(text),
    }
}

/// `Result` of the facade → `PyResult`.
trait IntoPy<T> {
    fn py(self) -> PyResult<T>;
}
impl<T, E: Into<mirkit::Error>> IntoPy<T> for Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| to_py(e.into()))
    }
}

fn param(text: impl Into<String>) -> PyErr {
    ParameterError::new_err(text.into())
}

// ---------------------------------------------------------------------------------------
// threads

/// Threads asked for by `set_num_threads` (0: the default).
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// The pool, the process that built it and its size.
struct Pool {
    pid: u32,
    threads: usize,
    pool: Arc<rayon::ThreadPool>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

fn wanted_threads() -> usize {
    match REQUESTED.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

/// This process's pool, built on first use, after `set_num_threads`, and after `fork`.
fn pool() -> PyResult<Arc<rayon::ThreadPool>> {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    let want = wanted_threads();
    if let Some(p) = guard.as_ref() {
        if p.pid == pid && p.threads == want {
            return Ok(p.pool.clone());
        }
    }
    if let Some(old) = guard.take() {
        if old.pid != pid {
            // inherited through fork: its worker threads exist only in the parent, and
            // dropping it would signal threads that are not there
            std::mem::forget(old);
        }
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(want)
        .thread_name(|i| format!("mirkit-{i}"))
        .build()
        .map_err(|e| MirkitError::new_err(format!("cannot start {want} threads: {e}")))?;
    let pool = Arc::new(built);
    *guard = Some(Pool {
        pid,
        threads: want,
        pool: pool.clone(),
    });
    Ok(pool)
}

/// Runs `f` without the GIL, on this module's pool.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    let pool = pool()?;
    Ok(py.detach(|| pool.install(f)))
}

/// Sets the number of threads mirkit's numeric work uses (`0`: back to the default,
/// `RAYON_NUM_THREADS` or every core). Takes effect at the next call.
#[pyfunction]
fn set_num_threads(n: usize) {
    REQUESTED.store(n, Ordering::Relaxed);
}

/// The number of threads the next call will use.
#[pyfunction]
fn get_num_threads() -> usize {
    wanted_threads()
}

/// Makes the C allocator keep freed large blocks for reuse (glibc: `mallopt` of the mmap
/// and trim thresholds); returns whether it applied. Networks allocate and free
/// activations of tens of MB per window: without it each is page-faulted in again (see
/// `mirkit_core::alloc`). Process-wide and irreversible: resident memory then stays at
/// its peak, which suits a worker that tags or trains repeatedly. The `mirkit` command
/// line does this at start-up; the Python package never does it on its own.
#[pyfunction]
fn keep_freed_memory() -> bool {
    mirkit::core::alloc::keep_freed_memory()
}

// ---------------------------------------------------------------------------------------
// arrays

/// The data of a C-contiguous `float32` input of any rank, read in place (the Python
/// layer ensures the layout).
fn slice<'a, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, f32, D>,
    name: &str,
) -> PyResult<&'a [f32]> {
    a.as_slice()
        .map_err(|_| param(format!("{name} must be C-contiguous float32")))
}

fn vec1(py: Python<'_>, v: Vec<f32>) -> Bound<'_, PyArray1<f32>> {
    Array1::from_vec(v).into_pyarray(py)
}

fn vec2<T: numpy::Element>(
    py: Python<'_>,
    v: Vec<T>,
    shape: (usize, usize),
) -> PyResult<Bound<'_, PyArray2<T>>> {
    Ok(Array2::from_shape_vec(shape, v)
        .map_err(|e| MirkitError::new_err(e.to_string()))?
        .into_pyarray(py))
}

/// An owned ndarray (workspace version) as row-major data without a copy where it is
/// already in standard layout.
fn owned2<T: Clone>(a: mirkit::ndarray::Array2<T>) -> (Vec<T>, (usize, usize)) {
    let shape = a.dim();
    let a = if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned()
    };
    let (v, off) = a.into_raw_vec_and_offset();
    debug_assert!(off.unwrap_or(0) == 0);
    (v, shape)
}

// ---------------------------------------------------------------------------------------
// parameters

fn resample_quality(res_type: &str) -> PyResult<ResampleQuality> {
    Ok(match res_type {
        "soxr_vhq" | "soxr_hq" | "soxr_mq" | "soxr_lq" | "soxr_qq" | "kaiser_best"
        | "kaiser_fast" | "polyphase" | "sinc_best" | "sinc_medium" | "sinc_fastest" | "high" => {
            ResampleQuality::High
        }
        "fft" | "scipy" | "fast" => ResampleQuality::Fast,
        other => {
            return Err(param(format!(
                "res_type={other:?}: not supported (soxr_*, kaiser_*, polyphase and \
                 sinc_* use mirkit's windowed-sinc resampler; fft/scipy its FFT one)"
            )))
        }
    })
}

/// The framing of the librosa-shaped layer ([`mirkit::rosa::Spectrogram`], the one place
/// that turns librosa's arguments into a configuration).
#[allow(clippy::too_many_arguments)]
fn spectrogram(
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &str,
    center: bool,
    pad_mode: &str,
    power: f32,
) -> PyResult<Spectrogram> {
    Ok(Spectrogram {
        n_fft,
        hop_length: Some(hop_length),
        win_length: Some(win_length),
        window: window.parse::<WindowKind>().py()?,
        center,
        pad_mode: pad_mode.parse::<PadMode>().py()?,
        power,
    })
}

fn mel_bands(
    n_mels: usize,
    fmin: f32,
    fmax: Option<f32>,
    htk: bool,
    norm: Option<&str>,
) -> PyResult<Mel> {
    let slaney_norm = match norm {
        None => false,
        Some("slaney") => true,
        Some(other) => {
            return Err(param(format!(
                "norm={other:?}: mirkit supports norm='slaney' or None"
            )))
        }
    };
    Ok(Mel {
        n_mels,
        fmin,
        fmax,
        htk,
        slaney_norm,
    })
}

fn db_config(reference: Option<f32>, amin: f32, top_db: Option<f32>) -> DbConfig {
    DbConfig {
        reference: reference.map_or(DbRef::Max, DbRef::Value),
        amin,
        top_db,
    }
}

fn phase_mode(phase: &str) -> PyResult<PhaseMode> {
    phase.parse::<PhaseMode>().py()
}

fn layers(name: &str) -> PyResult<Layers> {
    name.parse::<Layers>().map_err(|_| {
        param(format!(
            "layers={name:?}: one of 'penultimate' (or 'embedding'), 'all', 'all-max' or \
             'all-mean-max'"
        ))
    })
}

// ---------------------------------------------------------------------------------------
// audio

/// Decodes `path` as `librosa.load` does; returns `(samples, sample_rate)` with samples of
/// shape `(n,)` when `mono`, else `(channels, n)`. `sr=None` keeps the native rate.
#[pyfunction]
#[pyo3(signature = (path, sr, mono, offset, duration, res_type))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    sr: Option<u32>,
    mono: bool,
    offset: f64,
    duration: Option<f64>,
    res_type: &str,
) -> PyResult<(Py<PyAny>, u32)> {
    let opts = LoadOptions {
        sr,
        mono,
        offset,
        duration,
        quality: resample_quality(res_type)?,
    };
    let buf = run(py, || mirkit::io::load(&path, &opts))?.py()?;
    let rate = buf.sample_rate();
    let channels = buf.channels();
    let (v, shape) = owned2(buf.into_array());
    let arr = if mono && channels == 1 {
        vec1(py, v).into_any().unbind()
    } else {
        vec2(py, v, shape)?.into_any().unbind()
    };
    Ok((arr, rate))
}

/// Resamples a mono signal from `orig_sr` to `target_sr`.
#[pyfunction]
fn resample<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f32>,
    orig_sr: u32,
    target_sr: u32,
    res_type: &str,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let q = resample_quality(res_type)?;
    let x = slice(&y, "y")?;
    let out = run(py, || mirkit::io::resample(x, orig_sr, target_sr, q))?.py()?;
    Ok(vec1(py, out))
}

/// The complex STFT of a mono signal, shape `(1 + n_fft/2, frames)`, `complex64`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn stft<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f32>,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &str,
    center: bool,
    pad_mode: &str,
) -> PyResult<Bound<'py, PyArray2<Complex32>>> {
    let spec = spectrogram(n_fft, hop_length, win_length, window, center, pad_mode, 2.0)?;
    let x = slice(&y, "y")?;
    let out = run(py, || mirkit::rosa::stft_with(x, &spec))?.py()?;
    let (v, shape) = owned2(out);
    vec2(py, v, shape)
}

/// Spectral features of a mono signal in one pass: `|STFT|^power`, optionally mel bands
/// `(n_mels, fmin, fmax, htk, norm)`, dB compression `(ref or None for the maximum, amin,
/// top_db)` and MFCC `(n_mfcc, lifter)`. Shape `(rows, frames)`, `float32`.
#[pyfunction]
#[pyo3(signature = (y, sr, n_fft, hop_length, win_length, window, center, pad_mode, power, mel=None, db=None, mfcc=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn features<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f32>,
    sr: u32,
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: &str,
    center: bool,
    pad_mode: &str,
    power: f32,
    mel: Option<(usize, f32, Option<f32>, bool, Option<String>)>,
    db: Option<(Option<f32>, f32, Option<f32>)>,
    mfcc: Option<(usize, f32)>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let spec = spectrogram(
        n_fft, hop_length, win_length, window, center, pad_mode, power,
    )?;
    let mel = match mel {
        None => None,
        Some((n, fmin, fmax, htk, norm)) => Some(mel_bands(n, fmin, fmax, htk, norm.as_deref())?),
    };
    let cfg = spec.config(
        sr,
        mel.as_ref(),
        db.map(|(r, amin, top)| db_config(r, amin, top)),
        mfcc,
    );
    let x = slice(&y, "y")?;
    let out = run(py, || mirkit::rosa::features(x, cfg))?.py()?;
    let (v, shape) = owned2(out);
    vec2(py, v, shape)
}

/// librosa's mel filterbank, shape `(n_mels, 1 + n_fft/2)`, `float32`.
#[pyfunction]
#[pyo3(signature = (sr, n_fft, n_mels, fmin, fmax, htk, norm))]
#[allow(clippy::too_many_arguments)]
fn mel_filters<'py>(
    py: Python<'py>,
    sr: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f32,
    fmax: Option<f32>,
    htk: bool,
    norm: Option<&str>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let cfg = MelConfig::new(
        sr,
        n_fft,
        mel_bands(n_mels, fmin, fmax, htk, norm)?.settings(),
    );
    let fb = MelFilterbank::new(&cfg).py()?;
    let (v, shape) = owned2(fb.to_dense());
    vec2(py, v, shape)
}

/// Mel bands of a spectrogram `S` of shape `(1 + n_fft/2, frames)`.
#[pyfunction]
#[pyo3(signature = (s, sr, n_fft, n_mels, fmin, fmax, htk, norm))]
#[allow(clippy::too_many_arguments)]
fn mel_apply<'py>(
    py: Python<'py>,
    s: PyReadonlyArray2<'py, f32>,
    sr: u32,
    n_fft: usize,
    n_mels: usize,
    fmin: f32,
    fmax: Option<f32>,
    htk: bool,
    norm: Option<&str>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let cfg = MelConfig::new(
        sr,
        n_fft,
        mel_bands(n_mels, fmin, fmax, htk, norm)?.settings(),
    );
    let shape = (s.shape()[0], s.shape()[1]);
    let data = slice(&s, "S")?;
    let out = run(py, || -> mirkit::Result<_> {
        mirkit::dsp::check_finite(data)?;
        let view = mirkit::ndarray::ArrayView2::from_shape(shape, data)
            .map_err(|e| mirkit::Error::Invalid(e.to_string()))?;
        Ok(MelFilterbank::new(&cfg)?.apply(view)?)
    })?
    .py()?;
    let (v, shape) = owned2(out);
    vec2(py, v, shape)
}

/// MFCC (DCT-II, orthonormal) of a log-power mel spectrogram `S` `(n_mels, frames)`.
#[pyfunction]
fn mfcc_from_db<'py>(
    py: Python<'py>,
    s: PyReadonlyArray2<'py, f32>,
    n_mfcc: usize,
    lifter: f32,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let shape = (s.shape()[0], s.shape()[1]);
    let data = slice(&s, "S")?;
    let out = run(py, || -> mirkit::Result<_> {
        let view = mirkit::ndarray::ArrayView2::from_shape(shape, data)
            .map_err(|e| mirkit::Error::Invalid(e.to_string()))?;
        Ok(mirkit::dsp::mfcc_from_log_mel(view, n_mfcc, lifter)?)
    })?
    .py()?;
    let (v, shape) = owned2(out);
    vec2(py, v, shape)
}

fn db_any<'py>(
    py: Python<'py>,
    s: PyReadonlyArrayDyn<'py, f32>,
    cfg: DbConfig,
    amplitude: bool,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let shape = s.shape().to_vec();
    let data = slice(&s, "S")?;
    let out = run(py, || {
        if amplitude {
            mirkit::dsp::amplitude_to_db(data, &cfg)
        } else {
            mirkit::dsp::power_to_db(data, &cfg)
        }
    })?
    .py()?;
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out)
        .map_err(|e| MirkitError::new_err(e.to_string()))?
        .into_pyarray(py))
}

/// `librosa.power_to_db` of an array of any shape (`reference=None`: its maximum).
#[pyfunction]
#[pyo3(signature = (s, reference, amin, top_db))]
fn power_to_db<'py>(
    py: Python<'py>,
    s: PyReadonlyArrayDyn<'py, f32>,
    reference: Option<f32>,
    amin: f32,
    top_db: Option<f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    db_any(py, s, db_config(reference, amin, top_db), false)
}

/// `librosa.amplitude_to_db` of an array of any shape (`reference=None`: its maximum).
#[pyfunction]
#[pyo3(signature = (s, reference, amin, top_db))]
fn amplitude_to_db<'py>(
    py: Python<'py>,
    s: PyReadonlyArrayDyn<'py, f32>,
    reference: Option<f32>,
    amin: f32,
    top_db: Option<f32>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    db_any(py, s, db_config(reference, amin, top_db), true)
}

/// Phase-vocoder time stretch (`rate` > 1 is faster), as `librosa.effects.time_stretch`;
/// `phase` is `"librosa"` or `"identity"` (identity phase locking).
#[pyfunction]
fn time_stretch<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f32>,
    rate: f64,
    phase: &str,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let mode = phase_mode(phase)?;
    let x = slice(&y, "y")?;
    let out = run(py, || mirkit::augment::time_stretch(x, rate, mode))?.py()?;
    Ok(vec1(py, out))
}

/// Pitch shift by `n_steps` of `1/bins_per_octave` octave, as `librosa.effects.pitch_shift`.
#[pyfunction]
fn pitch_shift<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f32>,
    n_steps: f64,
    bins_per_octave: u32,
    phase: &str,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let mode = phase_mode(phase)?;
    let x = slice(&y, "y")?;
    let out = run(py, || {
        mirkit::augment::pitch_shift(x, n_steps, bins_per_octave, mode)
    })?
    .py()?;
    Ok(vec1(py, out))
}

// ---------------------------------------------------------------------------------------
// models

/// A pretrained tagger, loaded once and reused (see `mirkit.Tagger` for the Python API).
#[pyclass(module = "mirkit._native", frozen, name = "NativeTagger")]
struct NativeTagger {
    inner: mirkit::Tagger,
}

/// One file's outcome in a batch: scores, embedding, or the error text.
type Outcome = (Option<Vec<f32>>, Option<Vec<f32>>, Option<String>);

#[pymethods]
impl NativeTagger {
    /// Loads a registry model (`mirkit.models()`) or a `.safetensors` file.
    #[new]
    fn new(py: Python<'_>, model: &str) -> PyResult<Self> {
        let inner = run(py, || mirkit::Tagger::new(model))?.py()?;
        Ok(Self { inner })
    }
    /// The model's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }
    /// Tag names in score order.
    #[getter]
    fn tags(&self) -> Vec<String> {
        self.inner.tags().to_vec()
    }
    /// The sample rate the model runs at.
    #[getter]
    fn sample_rate(&self) -> u32 {
        self.inner.model().sample_rate()
    }
    /// Seconds between the starts of successive windows.
    #[getter]
    fn window_secs(&self) -> f64 {
        self.inner.window_secs()
    }
    /// Scores of a file averaged over windows `(tags,)`, and per window `(windows, tags)`.
    fn tag_file<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Tagged<'py>> {
        let r = run(py, || self.inner.tag_file(&path))?.py()?;
        tagged(py, r)
    }
    /// [`Self::tag_file`] for mono samples at `sr`.
    fn tag_samples<'py>(
        &self,
        py: Python<'py>,
        y: PyReadonlyArray1<'py, f32>,
        sr: u32,
    ) -> PyResult<Tagged<'py>> {
        let x = slice(&y, "y")?;
        let r = run(py, || self.inner.tag_samples(x, sr))?.py()?;
        tagged(py, r)
    }
    /// The embedding of a file (`layers`: `"penultimate"` or `"all"`).
    fn embed_file<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        layers: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let l = self::layers(layers)?;
        let v = run(py, || self.inner.embed_with(&path, l))?.py()?;
        Ok(vec1(py, v))
    }
    /// The embedding of mono samples at `sr`.
    fn embed_samples<'py>(
        &self,
        py: Python<'py>,
        y: PyReadonlyArray1<'py, f32>,
        sr: u32,
        layers: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let l = self::layers(layers)?;
        let x = slice(&y, "y")?;
        let v = run(py, || self.inner.embed_samples(x, sr, l))?.py()?;
        Ok(vec1(py, v))
    }
    /// The thumbnail of a file: `(start_secs, end_secs, score)` (see `mirkit::thumbnail`).
    fn thumbnail(
        &self,
        py: Python<'_>,
        path: PathBuf,
        seconds: f64,
        repetition: f32,
    ) -> PyResult<(f64, f64, f32)> {
        let opts = mirkit::thumbnail::ThumbnailOptions {
            seconds,
            repetition,
        };
        let t = run(py, || self.inner.thumbnail_file(&path, &opts))?.py()?;
        Ok((t.start_secs, t.end_secs, t.score))
    }
    /// Files in parallel: for each, `(scores or None, embedding or None, error or None)`;
    /// one bad file gives its error text and does not stop the others.
    #[pyo3(signature = (paths, scores, embed=None))]
    fn batch(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        scores: bool,
        embed: Option<&str>,
    ) -> PyResult<Vec<Outcome>> {
        let l = embed.map(self::layers).transpose()?;
        run(py, || {
            paths
                .par_iter()
                .map(|p| {
                    let s = if scores {
                        match self.inner.tag_file(p) {
                            Ok(r) => Some(r.scores),
                            Err(e) => return (None, None, Some(message(&e))),
                        }
                    } else {
                        None
                    };
                    let e = match l {
                        None => None,
                        Some(l) => match self.inner.embed_with(p, l) {
                            Ok(v) => Some(v),
                            Err(e) => return (None, None, Some(message(&e))),
                        },
                    };
                    (s, e, None)
                })
                .collect()
        })
    }
}

/// Mean scores `(tags,)` and the taggram `(windows, tags)`.
type Tagged<'py> = (Bound<'py, PyArray1<f32>>, Bound<'py, PyArray2<f32>>);

fn tagged(py: Python<'_>, r: mirkit::TagResult) -> PyResult<Tagged<'_>> {
    let n = r.tags.len();
    let w = r.segments.len();
    let v: Vec<f32> = r.segments.into_iter().flat_map(|s| s.scores).collect();
    Ok((vec1(py, r.scores), vec2(py, v, (w, n))?))
}

/// This worker's `(index, count)` in a job array from the variables in `env` (the rules
/// of `mirkit tag --shard auto`, `mirkit::pipeline::shard_from_env`).
#[pyfunction]
fn shard_from_env(env: std::collections::HashMap<String, String>) -> PyResult<(usize, usize)> {
    mirkit::pipeline::shard_from_env(|k| env.get(k).cloned()).map_err(param)
}

/// `(name, description)` of every registry model.
#[pyfunction]
fn models() -> Vec<(String, String)> {
    mirkit::models::registry::MODELS
        .iter()
        .map(|e| (e.name.to_string(), e.description.to_string()))
        .collect()
}

/// The default model's name.
#[pyfunction]
fn default_model() -> &'static str {
    mirkit::models::registry::DEFAULT_MODEL
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // "release" for a wheel (`maturin build --release`); "dev" for the test build, which
    // keeps debug assertions: benchmarks refuse it
    m.add(
        "__build__",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        },
    )?;
    m.add("MirkitError", py.get_type::<MirkitError>())?;
    m.add("ParameterError", py.get_type::<ParameterError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add_class::<NativeTagger>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(keep_freed_memory, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(stft, m)?)?;
    m.add_function(wrap_pyfunction!(features, m)?)?;
    m.add_function(wrap_pyfunction!(mel_filters, m)?)?;
    m.add_function(wrap_pyfunction!(mel_apply, m)?)?;
    m.add_function(wrap_pyfunction!(mfcc_from_db, m)?)?;
    m.add_function(wrap_pyfunction!(power_to_db, m)?)?;
    m.add_function(wrap_pyfunction!(amplitude_to_db, m)?)?;
    m.add_function(wrap_pyfunction!(time_stretch, m)?)?;
    m.add_function(wrap_pyfunction!(pitch_shift, m)?)?;
    m.add_function(wrap_pyfunction!(models, m)?)?;
    m.add_function(wrap_pyfunction!(default_model, m)?)?;
    m.add_function(wrap_pyfunction!(shard_from_env, m)?)?;
    Ok(())
}
