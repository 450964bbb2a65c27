//! The feature extractor with arbitrary parameters and samples (NaN, Inf, subnormals,
//! empty): building the extractor and computing must give a result or a typed error.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mirkit_dsp::{Compression, DbConfig, DbRef, FeatureConfig, FeatureExtractor, MfccSettings};

#[derive(Arbitrary, Debug)]
struct Input {
    sample_rate: u16,
    n_fft: u16,
    hop: u16,
    win: u16,
    n_mels: u8,
    fmin: f32,
    fmax: Option<f32>,
    power: f32,
    center: bool,
    db: Option<(f32, Option<f32>, bool)>,
    mfcc: Option<(u8, f32)>,
    samples: Vec<f32>,
}

fuzz_target!(|i: Input| {
    if i.samples.len() > 200_000 || i.n_fft > 8192 {
        return; // keep each run short; sizes are checked by their own validation
    }
    let mut c = FeatureConfig::librosa();
    c.sample_rate = i.sample_rate.into();
    c.stft.n_fft = i.n_fft.into();
    c.stft.hop_length = i.hop.into();
    c.stft.win_length = i.win.into();
    c.stft.center = i.center;
    c.power = i.power;
    if let Some(m) = c.mel.as_mut() {
        m.n_mels = i.n_mels.into();
        m.fmin = i.fmin;
        m.fmax = i.fmax;
    }
    if let Some((amin, top_db, max_ref)) = i.db {
        c.compression = Compression::Db(DbConfig {
            reference: if max_ref {
                DbRef::Max
            } else {
                DbRef::Value(1.0)
            },
            amin,
            top_db,
        });
    }
    if let Some((n, lifter)) = i.mfcc {
        c.mfcc = Some(MfccSettings {
            n_mfcc: n.into(),
            lifter,
        });
    }
    if let Ok(fx) = FeatureExtractor::new(c) {
        let _ = fx.compute(&i.samples);
    }
});
