//! Times single-threaded log-mel extraction against the FFTs alone, and many files in
//! parallel on 1 vs all cores; prints JSON. Used by `tools/bench_compare.py`, which runs
//! librosa and torchaudio on the same samples.
//!
//! `cargo run --release --example bench_features -- [INPUT.npy] [REPEATS]`
//! (default input: 10 minutes of the Brahms clip tiled at 22.05 kHz, built in memory).

use mirkit::dsp::{
    Compression, DbConfig, FeatureConfig, FeatureExtractor, MelArithmetic, MelNorm, MelScale,
    MelSettings, StftConfig,
};
use realfft::RealFftPlanner;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let y: Vec<f32> = match args.get(1) {
        Some(p) => mirkit::core::npy::read(p)
            .expect("input .npy")
            .data
            .iter()
            .map(|&v| v as f32)
            .collect(),
        None => {
            let clip = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/clips/brahms_hungarian_dance_5.hq.ogg"
            );
            let b = mirkit::io::load(clip, &mirkit::io::LoadOptions::at(22050)).expect("clip");
            b.samples()
                .iter()
                .copied()
                .cycle()
                .take(600 * 22050)
                .collect()
        }
    };
    let cfg = FeatureConfig {
        sample_rate: 22050,
        stft: StftConfig::new(512).hop(256),
        power: 2.0,
        mel: Some(MelSettings {
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            arithmetic: MelArithmetic::Librosa,
        }),
        compression: Compression::Db(DbConfig::default()),
        mfcc: None,
    };
    let ex = FeatureExtractor::new(cfg).unwrap();
    let n_frames = ex.n_frames(y.len()).unwrap();

    // FFTs alone: every frame copied (as f64 or f32; no window) and forward real FFT'd
    let time_fft = |f64_: bool| -> f64 {
        let t = Instant::now();
        let mut acc = 0.0f64;
        if f64_ {
            let fft = RealFftPlanner::<f64>::new().plan_fft_forward(512);
            let (mut i, mut o, mut s) = (
                fft.make_input_vec(),
                fft.make_output_vec(),
                fft.make_scratch_vec(),
            );
            for k in 0..n_frames.saturating_sub(2) {
                for (d, &v) in i.iter_mut().zip(&y[k * 256..k * 256 + 512]) {
                    *d = v as f64;
                }
                fft.process_with_scratch(&mut i, &mut o, &mut s).unwrap();
                acc += o[1].re;
            }
        } else {
            let fft = RealFftPlanner::<f32>::new().plan_fft_forward(512);
            let (mut i, mut o, mut s) = (
                fft.make_input_vec(),
                fft.make_output_vec(),
                fft.make_scratch_vec(),
            );
            for k in 0..n_frames.saturating_sub(2) {
                i.copy_from_slice(&y[k * 256..k * 256 + 512]);
                fft.process_with_scratch(&mut i, &mut o, &mut s).unwrap();
                acc += o[1].re as f64;
            }
        }
        std::hint::black_box(acc);
        t.elapsed().as_secs_f64()
    };
    // the three are timed in turn within each repeat, so that a slow spell of this
    // shared machine affects all of them rather than one
    let mut scratch = ex.scratch();
    let (mut f32s, mut f64s, mut lms) = (vec![], vec![], vec![]);
    for _ in 0..repeats {
        f32s.push(time_fft(false));
        f64s.push(time_fft(true));
        let t = Instant::now();
        let m = ex.compute_with(&y, &mut scratch).unwrap();
        std::hint::black_box(m);
        lms.push(t.elapsed().as_secs_f64());
    }
    let (fft32, fft64, logmel) = (median(f32s), median(f64s), median(lms));
    // many files in parallel: the 10 minutes as 20 half-minute signals, each three times
    // (~0.1 s on one thread), as one queue on a pool of 1 thread vs all threads; one
    // scratch per worker. 1- and n-thread timings alternate and the ratio is taken per
    // pair, so a slow spell of this shared machine hits both sides of a ratio. The bare
    // f64 FFTs of the same files (as above: f64 copy + realfft, no output) are timed the same way as
    // a control: they show how far this machine lets such work scale at all.
    let files: Vec<&[f32]> = (0..20)
        .map(|i| &y[i * 30 * 22050..(i + 1) * 30 * 22050])
        .collect();
    let jobs = 3 * files.len();
    // planned once; each worker gets its own buffers
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(512);
    let run = |threads: usize, bare_fft: bool| -> f64 {
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let t = Instant::now();
        pool.install(|| {
            if bare_fft {
                (0..jobs).into_par_iter().for_each_init(
                    || {
                        (
                            fft.make_input_vec(),
                            fft.make_output_vec(),
                            fft.make_scratch_vec(),
                        )
                    },
                    |(i, o, s), j| {
                        let f = files[j % files.len()];
                        let mut acc = 0.0f64;
                        for k in 0..(f.len() - 512) / 256 {
                            for (d, &v) in i.iter_mut().zip(&f[k * 256..]) {
                                *d = v as f64;
                            }
                            fft.process_with_scratch(i, o, s).unwrap();
                            acc += o[1].re;
                        }
                        std::hint::black_box(acc);
                    },
                )
            } else {
                (0..jobs).into_par_iter().for_each_init(
                    || ex.scratch(),
                    |s, j| {
                        std::hint::black_box(ex.compute_with(files[j % files.len()], s).unwrap());
                    },
                )
            }
        });
        t.elapsed().as_secs_f64()
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (mut p1, mut pn, mut ratios, mut fft_ratios) = (vec![], vec![], vec![], vec![]);
    for _ in 0..2 * repeats {
        let (a, b) = (run(1, false), run(cores, false));
        ratios.push(a / b);
        p1.push(a);
        pn.push(b);
        fft_ratios.push(run(1, true) / run(cores, true));
    }
    let (par1, parn) = (median(p1), median(pn));
    let (speedup, fft_speedup) = (median(ratios.clone()), median(fft_ratios.clone()));
    let (lo, hi) = ratios
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
    println!(
        "{}",
        serde_json::json!({
            "seconds_of_audio": y.len() as f64 / 22050.0, "frames": n_frames,
            "fft_f32_s": fft32, "fft_f64_s": fft64, "logmel_s": logmel,
            "logmel_over_fft_f64": logmel / fft64, "logmel_over_fft_f32": logmel / fft32,
            "parallel_files_1thread_s": par1, "parallel_files_all_threads_s": parn, "threads": cores,
            "parallel_speedup": speedup, "parallel_speedup_min": lo, "parallel_speedup_max": hi,
            "parallel_fft_only_speedup": fft_speedup,
        })
    );
}
