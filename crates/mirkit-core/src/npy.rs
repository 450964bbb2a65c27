//! Minimal `.npy` (NumPy format 1.0/2.0) reading and writing.
//!
//! Reads little-endian `f4`, `f8`, `i2`, `i4`, `i8` arrays of any rank (C or Fortran
//! order) into `f64` or `f32`; writes `f32` arrays. [`NpyFrameWriter`] streams
//! `(rows, frames)` arrays frame by frame (Fortran order, so memory does not grow with
//! the number of frames) into a temporary file that is renamed into place only when
//! [`NpyFrameWriter::finish`] succeeds: an interrupted run never leaves a half-written
//! file under the final name.

use crate::{CoreError, Result};
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn, ShapeBuilder};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn io_err(path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Io {
        path: path.display().to_string(),
        cause: source,
    }
}

/// A decoded `.npy` array: shape, order and values converted to `f64`.
#[derive(Debug, Clone)]
pub struct NpyArray {
    /// Array shape.
    pub shape: Vec<usize>,
    /// Values in C (row-major) order.
    pub data: Vec<f64>,
}

impl NpyArray {
    /// As an `ndarray` of `f64`.
    pub fn to_f64(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.clone()).expect("shape matches")
    }
    /// As an `ndarray` of `f32`.
    pub fn to_f32(&self) -> ArrayD<f32> {
        ArrayD::from_shape_vec(
            IxDyn(&self.shape),
            self.data.iter().map(|&v| v as f32).collect(),
        )
        .expect("shape matches")
    }
    /// As a 2-D `f32` array; error if the rank is not 2.
    pub fn to_f32_2d(&self) -> Result<Array2<f32>> {
        if self.shape.len() != 2 {
            return Err(CoreError::Npy(format!(
                "expected rank 2, got shape {:?}",
                self.shape
            )));
        }
        Ok(Array2::from_shape_vec(
            (self.shape[0], self.shape[1]),
            self.data.iter().map(|&v| v as f32).collect(),
        )
        .expect("shape matches"))
    }
}

fn parse_header(h: &str) -> Result<(String, bool, Vec<usize>)> {
    let get = |key: &str| -> Result<&str> {
        let k = format!("'{key}':");
        let i = h
            .find(&k)
            .ok_or_else(|| CoreError::Npy(format!("header lacks {key}: {h}")))?;
        Ok(h[i + k.len()..].trim_start())
    };
    let descr = get("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| CoreError::Npy(format!("bad descr in {h}")))?
        .to_string();
    let fortran = get("fortran_order")?.starts_with("True");
    let shape_s = get("shape")?;
    let open = shape_s
        .find('(')
        .ok_or_else(|| CoreError::Npy("bad shape".into()))?;
    // the ')' after the '(' (found by fuzzing: `'shape': 72, 2), ... (257, 172, 2)` has
    // one before it, and slicing open..close panicked)
    let close = shape_s[open..]
        .find(')')
        .map(|c| open + c)
        .ok_or_else(|| CoreError::Npy("bad shape".into()))?;
    let mut shape = Vec::new();
    for part in shape_s[open + 1..close].split(',') {
        let p = part.trim();
        if !p.is_empty() {
            shape.push(
                p.parse::<usize>()
                    .map_err(|_| CoreError::Npy(format!("bad dim {p:?}")))?,
            );
        }
    }
    Ok((descr, fortran, shape))
}

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io_err(path, e))?;
    from_bytes(&bytes).map_err(|e| match e {
        CoreError::Npy(m) => CoreError::Npy(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// Parses `.npy` bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(CoreError::Npy("not an .npy file (bad magic)".into()));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(CoreError::Npy("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(CoreError::Npy(format!("unsupported version {v}"))),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| CoreError::Npy("truncated header".into()))?;
    let header =
        std::str::from_utf8(header).map_err(|_| CoreError::Npy("header not UTF-8".into()))?;
    let (descr, fortran, shape) = parse_header(header)?;
    let body = &bytes[start + hlen..];
    let (size, conv): (usize, fn(&[u8]) -> f64) = match descr.as_str() {
        "<f4" => (4, |b| f32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap())),
        "<i2" => (2, |b| i16::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i4" => (4, |b| i32::from_le_bytes(b.try_into().unwrap()) as f64),
        "<i8" => (8, |b| i64::from_le_bytes(b.try_into().unwrap()) as f64),
        "|u1" => (1, |b| b[0] as f64),
        d => return Err(CoreError::Npy(format!("unsupported dtype {d}"))),
    };
    // checked: a header may claim any shape (found by fuzzing: 3 × 2.97e22 overflowed)
    let need = shape
        .iter()
        .try_fold(size, |n, &d| n.checked_mul(d))
        .ok_or_else(|| CoreError::Npy(format!("shape {shape:?} has too many elements")))?;
    if body.len() < need {
        return Err(CoreError::Npy(format!(
            "truncated data: need {need} bytes, have {}",
            body.len()
        )));
    }
    let vals: Vec<f64> = body[..need].chunks_exact(size).map(conv).collect();
    let data = if fortran && shape.len() > 1 {
        let a = ArrayD::from_shape_vec(IxDyn(&shape).f(), vals).expect("shape matches");
        a.iter().copied().collect() // logical (C) order iteration
    } else {
        vals
    };
    Ok(NpyArray { shape, data })
}

fn header_bytes(shape: &[usize], fortran: bool, pad_to: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!(
        "{{'descr': '<f4', 'fortran_order': {}, 'shape': {}, }}",
        if fortran { "True" } else { "False" },
        shape_s
    );
    // total = 10 + len(h) + 1 (newline) must be a multiple of 64 and at least pad_to
    let mut total = 10 + h.len() + 1;
    total = total.max(pad_to);
    total = total.div_ceil(64) * 64;
    while 10 + h.len() + 1 < total {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out
}

/// A fresh temporary sibling path for an atomic write: `NAME.part<pid>-<n>`, unique within
/// the process (`n` counts calls), so two writers of one process never share a temporary
/// file even when they target the same name (inputs `x.wav` and `x.flac` of one folder
/// run both writing `x.npy`), and unique across processes by the pid.
///
/// The path is recorded as live until it is renamed into place ([`commit`]) or removed
/// ([`remove_temp`]), so that [`remove_live_temps`] can clean up after an interrupt.
pub fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path
        .file_name()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    name.push(format!(".part{}-{n}", std::process::id()));
    let tmp = path.with_file_name(name);
    live().insert(tmp.clone());
    tmp
}

/// Temporary files of this process that exist or may exist (made by [`temp_path`], not yet
/// renamed or removed).
fn live() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<PathBuf>> {
    static LIVE: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a temporary file made by [`temp_path`] (ignoring a file already gone) and
/// stops tracking it.
pub fn remove_temp(tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
    live().remove(tmp);
}

/// Removes every temporary file of this process still in flight; returns how many were
/// removed. For an interrupt (SIGINT/SIGTERM): the `mirkit` command line calls it from its
/// signal thread before exiting, so no `NAME.part…` file is left behind. Outputs already
/// renamed into place are untouched.
pub fn remove_live_temps() -> usize {
    // a save of several files renaming them into place finishes first (microseconds),
    // so an interrupt never leaves such a set half-renamed with its last parts deleted
    let _group = commit_lock();
    remove_tracked(|_| true)
}

fn commit_lock() -> std::sync::MutexGuard<'static, ()> {
    static COMMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    COMMIT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `renames` — the phase of a multi-file save that renames complete temporary files
/// into place — so that an interrupt's cleanup ([`remove_live_temps`]) waits for it to end
/// instead of deleting the files not yet renamed. (A SIGKILL cannot wait: readers of such
/// a set recover from the temporaries it leaves, e.g. the embedding index.)
pub fn commit_group<T>(renames: impl FnOnce() -> T) -> T {
    let _group = commit_lock();
    renames()
}

/// Whether `name` is a temporary name made by [`temp_path`] (`NAME.part<pid>-<n>`), and
/// the pid that made it.
fn temp_owner(name: &str) -> Option<u32> {
    let (_, tail) = name.rsplit_once(".part")?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a file named `name` is a temporary of a mirkit process that no longer runs
/// (not this one; `/proc/<pid>` gone).
fn is_stale_temp(name: &str) -> bool {
    temp_owner(name).is_some_and(|pid| {
        pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Removes temporary files left under `dir` (recursively, not following symlinks) by
/// mirkit processes that no longer run — killed with SIGKILL, or aborted, when no
/// cleanup could happen. A file counts as stale when its name is `NAME.part<pid>-<n>`,
/// the pid is not this process, and `/proc/<pid>` does not exist (Linux; elsewhere
/// nothing is removed, as liveness cannot be told). Temporary files of runs still going
/// (another mirkit writing into the same folder) are kept. Returns how many were
/// removed.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-stale-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("x.npy.part4194999-0"), b"half").unwrap(); // no such pid
/// let mine = mirkit_core::npy::temp_path(&dir.join("y.npy"));
/// std::fs::write(&mine, b"in progress").unwrap(); // this process: alive
/// let removed = mirkit_core::npy::remove_stale_temps(&dir);
/// if std::path::Path::new("/proc/self").exists() {
///     assert_eq!(removed, 1);
///     assert!(!dir.join("x.npy.part4194999-0").exists() && mine.exists());
/// }
/// # std::fs::remove_dir_all(&dir).ok();
/// ```
pub fn remove_stale_temps(dir: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                let name = e.file_name();
                if name.to_str().is_some_and(is_stale_temp)
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// [`remove_stale_temps`] for one output path: only its own stale temporaries
/// (`target`'s siblings named `NAME.part<pid>-<n>`), without walking the folder.
pub fn remove_stale_temps_of(target: &Path) -> usize {
    stale_temps_of(target)
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

/// The temporary files of `target` (its siblings named `NAME.part<pid>-<n>`) that mirkit
/// processes which no longer run left behind, sorted by name; empty where liveness cannot
/// be told (no `/proc`). A reader can use them to finish a save that was killed between
/// its renames.
pub fn stale_temps_of(target: &Path) -> Vec<PathBuf> {
    let (Some(name), Some(parent)) = (target.file_name().and_then(|n| n.to_str()), target.parent())
    else {
        return Vec::new();
    };
    if !Path::new("/proc/self").exists() {
        return Vec::new();
    }
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let prefix = format!("{name}.part");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let Some(n) = n.to_str() else { return false };
            n.starts_with(&prefix) && e.file_type().is_ok_and(|t| t.is_file()) && is_stale_temp(n)
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Removes (and stops tracking) the live temporary files `which` selects.
fn remove_tracked(which: impl Fn(&Path) -> bool) -> usize {
    let mut set = live();
    let chosen: Vec<PathBuf> = set.iter().filter(|p| which(p)).cloned().collect();
    chosen
        .iter()
        .filter(|p| {
            set.remove(*p);
            std::fs::remove_file(p).is_ok()
        })
        .count()
}

/// When written files are flushed to stable storage (`fsync`). Every writer of the
/// workspace is atomic whatever the choice: data go to a temporary sibling renamed over
/// the final name only when complete, so a failure, a full disk or a killed process never
/// leaves a partial file under that name and keeps what was there. Flushing adds
/// durability across a power loss or kernel crash, at the cost of a synchronous disk
/// flush per file (docs/design.md, "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Follow the process-wide setting ([`set_durable`]; off unless asked for): derived
    /// outputs (features, tags, embeddings, plots) that a rerun can recreate.
    Default,
    /// Always flush the file before the rename and its folder after: training
    /// checkpoints, whose loss would cost hours.
    Always,
    /// Never flush: temporary files deleted within the run.
    Never,
}

static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets whether [`Durability::Default`] writes are flushed (`mirkit --sync`,
/// `MIRKIT_SYNC=1`).
pub fn set_durable(on: bool) {
    DURABLE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`Durability::Default`] writes are flushed.
pub fn durable() -> bool {
    DURABLE.load(std::sync::atomic::Ordering::Relaxed)
}

impl Durability {
    /// Whether this write flushes.
    pub fn flushes(self) -> bool {
        match self {
            Durability::Default => durable(),
            Durability::Always => true,
            Durability::Never => false,
        }
    }
}

/// Bytes per write buffer: large writes, few system calls.
pub const WRITE_BUFFER: usize = 1 << 20;

/// An output path must be a regular file or not exist: a device, FIFO, socket or folder
/// there is an error (checked before writing and again before the rename).
fn check_target(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(std::io::Error::other(
            "exists and is not a regular file; refusing to replace it",
        )),
        _ => Ok(()),
    }
}

/// Checks that `path` can take an atomic write: it is a regular file or does not exist.
pub fn check_output(path: &Path) -> Result<()> {
    check_target(path).map_err(|e| io_err(path, e))
}

/// Renames a finished temporary file into place, flushing file and folder first when
/// `durability` asks for it; the temporary is removed on failure. A `path` that exists and
/// is not a regular file (a device, FIFO, socket or folder) is never replaced: an error.
pub fn commit(tmp: &Path, path: &Path, file: &File, durability: Durability) -> std::io::Result<()> {
    let flush = durability.flushes();
    let r = (|| {
        // never replace a device, FIFO, socket or folder by renaming over it (as root,
        // `-o /dev/null` would otherwise turn the device into a regular file)
        check_target(path)?;
        if flush {
            file.sync_all()?;
        }
        std::fs::rename(tmp, path)?;
        live().remove(tmp);
        if flush {
            // the rename itself is durable once the folder is
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if r.is_err() {
        remove_temp(tmp);
    }
    r
}

/// Writes bytes atomically: to a temporary sibling, then renamed over `path`
/// ([`Durability::Default`]).
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_with(path, Durability::Default, f)
}

/// [`write_atomic`] with an explicit [`Durability`].
pub fn write_atomic_with(
    path: &Path,
    durability: Durability,
    f: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    check_output(path)?;
    let tmp = temp_path(path);
    let res = (|| {
        let mut w = BufWriter::with_capacity(WRITE_BUFFER, File::create(&tmp)?);
        f(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        commit(&tmp, path, &file, durability)
    })();
    if let Err(e) = res {
        remove_temp(&tmp);
        return Err(io_err(path, e));
    }
    Ok(())
}

/// Appends the little-endian bytes of `v` to `out`.
fn extend_le(out: &mut Vec<u8>, v: &[f32]) {
    out.reserve(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// The bytes of a `.npy` file holding an `f32` array of any rank (C order) — what
/// [`write_f32`] writes — for callers that write or checksum it themselves.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = header_bytes(shape, false, 0);
    extend_le(&mut out, data);
    out
}

/// Writes an `f32` array of any rank (C order), atomically.
///
/// ```
/// use mirkit_core::npy;
/// let path = std::env::temp_dir().join(format!("mirkit-doc-npy-{}.npy", std::process::id()));
/// npy::write_f32(&path, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?; // numpy.load reads it
/// let a = npy::read(&path)?;
/// assert_eq!(a.shape, [2, 3]);
/// assert_eq!(a.to_f32_2d()?[[1, 0]], 4.0);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), mirkit_core::CoreError>(())
/// ```
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    if shape.iter().product::<usize>() != data.len() {
        return Err(CoreError::Shape(format!(
            "shape {shape:?} does not hold {} values",
            data.len()
        )));
    }
    write_atomic(path, |w| {
        w.write_all(&header_bytes(shape, false, 0))?;
        let mut bytes = Vec::with_capacity(WRITE_BUFFER);
        for chunk in data.chunks(WRITE_BUFFER / 4) {
            bytes.clear();
            extend_le(&mut bytes, chunk);
            w.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// Writes a 2-D `f32` array, atomically.
pub fn write_2d(path: impl AsRef<Path>, a: ArrayView2<f32>) -> Result<()> {
    let std = a.as_standard_layout();
    write_f32(
        path,
        &[a.nrows(), a.ncols()],
        std.as_slice().expect("standard layout"),
    )
}

/// Streams a `(rows, frames)` `f32` array to disk one frame at a time.
///
/// The file is Fortran-ordered so frames are contiguous; NumPy reads it as a normal
/// `(rows, frames)` array. Data goes to a temporary file that [`finish`](Self::finish)
/// renames into place; dropping the writer without finishing removes the temporary.
pub struct NpyFrameWriter {
    path: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
    rows: usize,
    frames: usize,
    durability: Durability,
    bytes: Vec<u8>,
}

const STREAM_HEADER: usize = 128;

impl NpyFrameWriter {
    /// Starts writing a `(rows, ?)` array to `path` ([`Durability::Default`]).
    pub fn create(path: impl AsRef<Path>, rows: usize) -> Result<Self> {
        Self::create_with(path, rows, Durability::Default)
    }
    /// Starts writing a `(rows, ?)` array to `path` with an explicit [`Durability`]
    /// (`Never` for scratch files deleted within the run).
    pub fn create_with(
        path: impl AsRef<Path>,
        rows: usize,
        durability: Durability,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_output(&path)?;
        let tmp = temp_path(&path);
        let mut w = BufWriter::with_capacity(
            WRITE_BUFFER,
            // readable too: `map_frames` reads back what was written
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| io_err(&path, e))?,
        );
        w.write_all(&header_bytes(&[rows, 0], true, STREAM_HEADER))
            .map_err(|e| io_err(&path, e))?;
        Ok(Self {
            path,
            tmp,
            w: Some(w),
            rows,
            frames: 0,
            durability,
            bytes: Vec::with_capacity(rows * 4),
        })
    }
    /// Appends one frame of `rows` values.
    pub fn push_frame(&mut self, frame: &[f32]) -> Result<()> {
        if frame.len() != self.rows {
            return Err(CoreError::Shape(format!(
                "frame of {} values, expected {}",
                frame.len(),
                self.rows
            )));
        }
        self.push_frames(frame)
    }
    /// Appends whole frames stored one after another (`rows` values each): converted and
    /// written a buffer at a time rather than frame by frame.
    pub fn push_frames(&mut self, frames: &[f32]) -> Result<()> {
        if self.rows == 0 || !frames.len().is_multiple_of(self.rows) {
            return Err(CoreError::Shape(format!(
                "{} values are not whole frames of {}",
                frames.len(),
                self.rows
            )));
        }
        let w = self.w.as_mut().expect("writer open until finish");
        // converted in pieces of at most one write buffer, so a large block needs no
        // second copy of itself
        for piece in frames.chunks(WRITE_BUFFER / 4) {
            self.bytes.clear();
            extend_le(&mut self.bytes, piece);
            w.write_all(&self.bytes)
                .map_err(|e| io_err(&self.path, e))?;
        }
        self.frames += frames.len() / self.rows;
        Ok(())
    }
    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// Rewrites every frame written so far in place with `f(frame)`, reading and writing
    /// the temporary file in blocks of about [`WRITE_BUFFER`] bytes: a second pass over a
    /// streamed output that keeps its shape, without holding the frames in memory.
    pub fn map_frames(&mut self, mut f: impl FnMut(&mut [f32])) -> Result<()> {
        let rows = self.rows.max(1);
        let per_block = (WRITE_BUFFER / (4 * rows)).max(1);
        let (frames, path) = (self.frames, self.path.clone());
        let w = self.w.as_mut().expect("writer open until finish");
        let r = (|| -> std::io::Result<()> {
            w.flush()?;
            let file = w.get_mut();
            let mut bytes = vec![0u8; per_block * rows * 4];
            let mut vals = vec![0.0f32; per_block * rows];
            let mut done = 0usize;
            while done < frames {
                let n = per_block.min(frames - done);
                let off = (STREAM_HEADER + done * rows * 4) as u64;
                let (b, v) = (&mut bytes[..n * rows * 4], &mut vals[..n * rows]);
                file.seek(SeekFrom::Start(off))?;
                file.read_exact(b)?;
                for (x, c) in v.iter_mut().zip(b.chunks_exact(4)) {
                    *x = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                }
                for frame in v.chunks_exact_mut(rows) {
                    f(frame);
                }
                for (c, x) in b.chunks_exact_mut(4).zip(v.iter()) {
                    c.copy_from_slice(&x.to_le_bytes());
                }
                file.seek(SeekFrom::Start(off))?;
                file.write_all(b)?;
                done += n;
            }
            file.seek(SeekFrom::End(0))?;
            Ok(())
        })();
        r.map_err(|e| io_err(&path, e))
    }
    /// Rewrites the header with the final shape and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        let path = self.path.clone();
        let w = self.w.take().expect("writer open");
        let res = (|| {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            let h = header_bytes(&[self.rows, self.frames], true, STREAM_HEADER);
            if h.len() != STREAM_HEADER {
                return Err(std::io::Error::other(
                    "npy header grew past its reserved size",
                ));
            }
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&h)?;
            commit(&self.tmp, &path, &f, self.durability)
        })();
        if res.is_err() {
            // the last buffered bytes or the header failed (a full disk): the writer is
            // gone, so Drop would not remove the temporary file
            remove_temp(&self.tmp);
        }
        res.map_err(|e| io_err(&path, e))
    }
}

impl Drop for NpyFrameWriter {
    fn drop(&mut self) {
        if self.w.is_some() {
            self.w = None;
            remove_temp(&self.tmp);
        }
    }
}

/// Reads back, one frame at a time, a Fortran-ordered `float32` `(rows, frames)` `.npy`
/// such as [`NpyFrameWriter`] writes (the header is parsed, not assumed), in constant
/// memory.
pub struct NpyFrameReader {
    path: PathBuf,
    r: std::io::BufReader<File>,
    rows: usize,
    frames: usize,
    read: usize,
    bytes: Vec<u8>,
}

impl NpyFrameReader {
    /// Opens `path` and checks that it holds a Fortran-ordered `<f4` 2-D array.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let named = |m: String| CoreError::Npy(format!("{}: {m}", path.display()));
        let mut r = std::io::BufReader::new(File::open(&path).map_err(|e| io_err(&path, e))?);
        let mut pre = [0u8; 10];
        r.read_exact(&mut pre).map_err(|e| io_err(&path, e))?;
        if &pre[..6] != b"\x93NUMPY" || pre[6] != 1 {
            return Err(named("not a version-1 .npy file".into()));
        }
        let mut h = vec![0u8; u16::from_le_bytes([pre[8], pre[9]]) as usize];
        r.read_exact(&mut h).map_err(|e| io_err(&path, e))?;
        let h = std::str::from_utf8(&h).map_err(|_| named("header not UTF-8".into()))?;
        let (descr, fortran, shape) = parse_header(h).map_err(|e| named(e.to_string()))?;
        if descr != "<f4" || !fortran || shape.len() != 2 {
            return Err(named(format!(
                "expected a Fortran-ordered <f4 (rows, frames) array, found {descr} {shape:?} (fortran_order {fortran})"
            )));
        }
        Ok(Self {
            rows: shape[0],
            frames: shape[1],
            bytes: vec![0u8; shape[0] * 4],
            path,
            r,
            read: 0,
        })
    }
    /// Rows per frame.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Frames in the file.
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// Reads the next frame into `frame` (`rows` values); `false` after the last frame.
    pub fn next_frame(&mut self, frame: &mut [f32]) -> Result<bool> {
        if frame.len() != self.rows {
            return Err(CoreError::Shape(format!(
                "frame buffer of {} values, the file has {} rows",
                frame.len(),
                self.rows
            )));
        }
        if self.read == self.frames {
            return Ok(false);
        }
        self.r
            .read_exact(&mut self.bytes)
            .map_err(|e| io_err(&self.path, e))?;
        for (v, b) in frame.iter_mut().zip(self.bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        self.read += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {

    /// Inputs found by `tools/fuzz.sh` (cargo-fuzz) that once panicked: each must give
    /// an error or an array, never a panic.
    #[test]
    fn fuzz_findings_are_errors() {
        let dir = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../tests/fixtures/fuzz");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "npy") {
                n += 1;
                assert!(
                    from_bytes(&std::fs::read(&p).unwrap()).is_err(),
                    "{}",
                    p.display()
                );
            }
        }
        assert!(n >= 1);
    }

    use super::*;

    #[test]
    fn roundtrip_c_and_stream() {
        let dir = std::env::temp_dir().join(format!("mirkit-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let a = Array2::from_shape_fn((3, 5), |(i, j)| (i * 10 + j) as f32);
        write_2d(&p, a.view()).unwrap();
        let r = read(&p).unwrap();
        assert_eq!(r.shape, vec![3, 5]);
        assert_eq!(r.to_f32_2d().unwrap(), a);

        let q = dir.join("b.npy");
        let mut w = NpyFrameWriter::create(&q, 3).unwrap();
        for j in 0..5 {
            w.push_frame(&a.column(j).to_vec()).unwrap();
        }
        assert!(!q.exists(), "nothing under the final name before finish");
        w.finish().unwrap();
        let r = read(&q).unwrap();
        assert_eq!(r.to_f32_2d().unwrap(), a);
        let bytes = std::fs::read(&q).unwrap();
        assert_eq!(bytes.len(), 128 + 15 * 4);

        // dropped writer leaves nothing behind
        let z = dir.join("c.npy");
        let w = NpyFrameWriter::create(&z, 3).unwrap();
        drop(w);
        assert!(!z.exists());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // temporary names never repeat within a process
        assert_ne!(temp_path(&z), temp_path(&z));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_garbage() {
        assert!(from_bytes(b"hello world, not npy").is_err());
        let mut h = header_bytes(&[4], false, 0);
        h.extend_from_slice(&[0u8; 8]); // 2 of 4 floats
        assert!(matches!(from_bytes(&h), Err(CoreError::Npy(m)) if m.contains("truncated")));
    }

    #[test]
    fn frame_reader_reads_back_what_the_frame_writer_wrote() {
        let dir = std::env::temp_dir().join(format!("mirkit-npy-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.npy");
        let mut w = NpyFrameWriter::create(&p, 3).unwrap();
        for i in 0..5 {
            w.push_frame(&[i as f32, -1.5, f32::MIN_POSITIVE]).unwrap();
        }
        w.finish().unwrap();
        let mut r = NpyFrameReader::open(&p).unwrap();
        assert_eq!((r.rows(), r.frames()), (3, 5));
        let mut f = [0.0f32; 3];
        for i in 0..5 {
            assert!(r.next_frame(&mut f).unwrap());
            assert_eq!(f, [i as f32, -1.5, f32::MIN_POSITIVE]);
        }
        assert!(!r.next_frame(&mut f).unwrap());
        assert!(r.next_frame(&mut [0.0; 2]).is_err());
        // a second pass in place, over more frames than one block holds
        let mut w = NpyFrameWriter::create(&p, 3).unwrap();
        let n = WRITE_BUFFER / 12 * 2 + 7;
        for i in 0..n {
            w.push_frame(&[i as f32, 1.0, 2.0]).unwrap();
        }
        w.map_frames(|fr| fr[1] = -fr[0]).unwrap();
        w.push_frame(&[9.0, 9.0, 9.0]).unwrap();
        w.finish().unwrap();
        let a = read(&p).unwrap().to_f32_2d().unwrap();
        assert_eq!(a.dim(), (3, n + 1));
        for i in 0..n {
            assert_eq!(
                [a[[0, i]], a[[1, i]], a[[2, i]]],
                [i as f32, -(i as f32), 2.0]
            );
        }
        assert_eq!(a[[1, n]], 9.0);
        // a C-ordered file is refused, naming the file
        write_f32(&p, &[3, 5], &[0.0; 15]).unwrap();
        let e = NpyFrameReader::open(&p).err().unwrap().to_string();
        assert!(e.contains("f.npy") && e.contains("Fortran"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Temporary files in flight are tracked until renamed or removed, and
    /// `remove_live_temps` deletes exactly those.
    #[test]
    fn live_temporaries_are_tracked() {
        let dir = std::env::temp_dir().join(format!("mirkit-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let done = dir.join("done.bin");
        write_atomic(&done, |w| w.write_all(b"kept")).unwrap();
        let t = temp_path(&dir.join("half.bin"));
        std::fs::write(&t, b"partial").unwrap();
        let gone = temp_path(&dir.join("gone.bin"));
        remove_temp(&gone);
        assert!(live().contains(&t) && !live().contains(&gone));
        // (the global remove_live_temps would race with the other tests' writes; the CLI
        // test `interrupted_runs_leave_no_temporary_files` covers it)
        assert_eq!(remove_tracked(|p| p.starts_with(&dir)), 1);
        assert!(!t.exists() && !live().contains(&t));
        assert_eq!(std::fs::read(&done).unwrap(), b"kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every durability writes the same file and leaves no temporary; a commit that cannot
    /// rename (the folder is gone) removes its temporary and keeps nothing half-written.
    #[test]
    fn durability_modes_write_atomically() {
        let dir = std::env::temp_dir().join(format!("mirkit-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, d) in [Durability::Default, Durability::Always, Durability::Never]
            .into_iter()
            .enumerate()
        {
            let p = dir.join(format!("{i}.bin"));
            write_atomic_with(&p, d, |w| w.write_all(b"abc")).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        }
        assert!(!durable());
        assert!(Durability::Always.flushes() && !Durability::Never.flushes());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".part")), "{names:?}");
        // the target folder vanishes between writing and renaming
        let gone = dir.join("gone");
        std::fs::create_dir_all(&gone).unwrap();
        let tmp = temp_path(&gone.join("x.bin"));
        let f = File::create(&tmp).unwrap();
        let target = dir.join("missing").join("x.bin");
        assert!(commit(&tmp, &target, &f, Durability::Always).is_err());
        assert!(!tmp.exists() && !target.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An output path that is a device or a folder is refused and left as it was, with no
    /// temporary file left behind.
    #[test]
    fn non_regular_targets_are_not_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = std::env::temp_dir().join(format!("mirkit-nonreg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let e = write_atomic(&dir.join("sub"), |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(dir.join("sub").is_dir());
        let null = Path::new("/dev/null");
        if null.exists() {
            let e = write_atomic(null, |w| w.write_all(b"x")).unwrap_err();
            assert!(e.to_string().contains("/dev/null"), "{e}");
            assert!(std::fs::metadata(null)
                .unwrap()
                .file_type()
                .is_char_device());
        }
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
