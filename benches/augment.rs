//! Criterion benches of mirkit-augment on 30 s of music at 22.05 kHz.
//! `cargo bench --bench augment`.
use criterion::{criterion_group, criterion_main, Criterion};
use mirkit::augment::*;

fn benches(c: &mut Criterion) {
    let clip = &format!(
        concat!("{}", "/data/clips/brahms_hungarian_dance_5.hq.ogg"),
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    );
    let y = mirkit::io::load(
        clip,
        &mirkit::io::LoadOptions {
            duration: Some(30.0),
            ..Default::default()
        },
    )
    .unwrap()
    .into_mono_vec();
    let mut g = c.benchmark_group("augment_30s_22k");
    g.sample_size(10);
    g.bench_function("time_stretch_1.25", |b| {
        b.iter(|| time_stretch(&y, 1.25, PhaseMode::Librosa).unwrap())
    });
    g.bench_function("time_stretch_1.25_phase_locked", |b| {
        b.iter(|| time_stretch(&y, 1.25, PhaseMode::IdentityLocking).unwrap())
    });
    g.bench_function("pitch_shift_+2", |b| {
        b.iter(|| pitch_shift(&y, 2.0, 12, PhaseMode::Librosa).unwrap())
    });
    g.bench_function("resample_ratio_0.89", |b| {
        b.iter(|| resample_ratio(&y, 0.8909, (y.len() as f64 * 0.8909) as usize))
    });
    g.bench_function("pink_noise_20db", |b| {
        b.iter(|| {
            let mut v = y.clone();
            add_noise(&mut v, 20.0, NoiseColor::Pink, 1).unwrap();
            v
        })
    });
    g.bench_function("lowpass_biquad", |b| {
        b.iter(|| {
            let mut v = y.clone();
            biquad(&mut v, 22050, FilterKind::LowPass, 2000.0, 0.707, 0.0).unwrap();
            v
        })
    });
    let aug = Augment::music_default(1.0);
    g.bench_function("music_default_chain", |b| {
        b.iter(|| {
            let mut v = y.clone();
            aug.apply(&mut v, 22050, &mut Rng::new(1), &mut Vec::new())
                .unwrap();
            v
        })
    });
    g.finish();
}

criterion_group!(augment, benches);
criterion_main!(augment);
