//! Criterion benches of the feature hot paths on 60 s of real music at 22.05 kHz
//! (n_fft 512, hop 256, 128 mels): STFT, power spectrogram, mel, log-mel, MFCC,
//! streaming log-mel, resampling 44.1 → 16 kHz. `cargo bench --bench features`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mirkit::dsp::*;
use mirkit::io::{load, resample, LoadOptions, ResampleQuality};

fn audio() -> (Vec<f32>, Vec<f32>) {
    let clip = &format!(
        concat!("{}", "/data/clips/brahms_hungarian_dance_5.hq.ogg"),
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    );
    let y = load(clip, &LoadOptions::at(22050)).unwrap();
    let y: Vec<f32> = y
        .samples()
        .iter()
        .copied()
        .cycle()
        .take(60 * 22050)
        .collect();
    let n = load(clip, &LoadOptions::native()).unwrap();
    let n: Vec<f32> = n.samples()[..10 * 44100].to_vec();
    (y, n)
}

fn cfg(compression: Compression, mel: bool) -> FeatureConfig {
    let mut c = FeatureConfig::librosa();
    c.stft = StftConfig::new(512).hop(256);
    c.compression = compression;
    if !mel {
        c.mel = None;
    }
    c
}

fn benches(c: &mut Criterion) {
    let (y, native) = audio();
    let mut g = c.benchmark_group("features_60s_22k");
    g.sample_size(20);
    g.throughput(Throughput::Elements(y.len() as u64));
    let st = Stft::new(StftConfig::new(512).hop(256)).unwrap();
    g.bench_function("stft_complex", |b| b.iter(|| st.stft(&y).unwrap()));
    let ex = FeatureExtractor::new(cfg(Compression::None, false)).unwrap();
    g.bench_function("power_spectrogram", |b| b.iter(|| ex.compute(&y).unwrap()));
    let ex = FeatureExtractor::new(cfg(Compression::None, true)).unwrap();
    g.bench_function("melspectrogram", |b| b.iter(|| ex.compute(&y).unwrap()));
    let ex = FeatureExtractor::new(cfg(Compression::Db(DbConfig::default()), true)).unwrap();
    g.bench_function("log_mel_db", |b| b.iter(|| ex.compute(&y).unwrap()));
    let mut m = cfg(Compression::Db(DbConfig::default()), true);
    m.mfcc = Some(MfccSettings {
        n_mfcc: 20,
        lifter: 0.0,
    });
    let ex_m = FeatureExtractor::new(m).unwrap();
    g.bench_function("mfcc20", |b| b.iter(|| ex_m.compute(&y).unwrap()));
    g.bench_function("log_mel_streaming_4096_blocks", |b| {
        b.iter(|| {
            let mut s = ex.streamer();
            let mut n = 0usize;
            for blk in y.chunks(4096) {
                s.push(blk, &mut |_f| n += 1).unwrap();
            }
            s.finish(&mut |_f| n += 1).unwrap();
            n
        })
    });
    g.finish();
    let mut g = c.benchmark_group("resample_10s_44k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(native.len() as u64));
    g.bench_function("high_to_16k", |b| {
        b.iter(|| resample(&native, 44100, 16000, ResampleQuality::High).unwrap())
    });
    g.bench_function("fast_to_16k", |b| {
        b.iter(|| resample(&native, 44100, 16000, ResampleQuality::Fast).unwrap())
    });
    g.bench_function("high_to_22050", |b| {
        b.iter(|| resample(&native, 44100, 22050, ResampleQuality::High).unwrap())
    });
    g.finish();
}

criterion_group!(features, benches);
criterion_main!(features);
