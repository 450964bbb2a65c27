//! Times pitch-shift and time-stretch on 30 s of music at 22.05 kHz (one thread) and
//! prints JSON; `tools/bench_augment.py` runs librosa on the same samples.
//! `cargo run --release --example bench_augment -- [INPUT.npy] [REPEATS]`
use mirkit::augment::{pitch_shift, time_stretch, PhaseMode};
use std::time::Instant;

fn median(f: &mut dyn FnMut(), n: usize) -> f64 {
    f();
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[n / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
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
            let b = mirkit::io::load(
                clip,
                &mirkit::io::LoadOptions {
                    duration: Some(30.0),
                    ..Default::default()
                },
            )
            .unwrap();
            b.into_mono_vec()
        }
    };
    let mut out = serde_json::Map::new();
    for (name, mode) in [
        ("librosa_mode", PhaseMode::Librosa),
        ("phase_locked", PhaseMode::IdentityLocking),
    ] {
        let ps = median(
            &mut || {
                drop(std::hint::black_box(
                    pitch_shift(&y, 2.0, 12, mode).unwrap(),
                ))
            },
            n,
        );
        let ts = median(
            &mut || drop(std::hint::black_box(time_stretch(&y, 1.25, mode).unwrap())),
            n,
        );
        out.insert(format!("pitch_shift_{name}_s"), ps.into());
        out.insert(format!("time_stretch_{name}_s"), ts.into());
    }
    out.insert("seconds_of_audio".into(), (y.len() as f64 / 22050.0).into());
    println!("{}", serde_json::Value::Object(out));
}
