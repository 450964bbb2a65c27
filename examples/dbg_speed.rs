use mirkit::dsp::*;
use std::time::Instant;
fn main() {
    let clip = concat!(env!("CARGO_MANIFEST_DIR"), "/data/clips/brahms_hungarian_dance_5.hq.ogg");
    let b = mirkit::io::load(clip, &mirkit::io::LoadOptions::at(22050)).expect("clip");
    let y: Vec<f32> = b.samples().iter().copied().cycle().take(600 * 22050).collect();
    for (name, comp, mel) in [("power-linear", Compression::None, false), ("mel-power", Compression::None, true), ("mel-db-notop", Compression::Db(DbConfig{top_db: None, ..Default::default()}), true), ("mel-db", Compression::Db(DbConfig::default()), true)] {
        let mut cfg = FeatureConfig::librosa(); cfg.stft = StftConfig::new(512).hop(256); cfg.compression = comp;
        if !mel { cfg.mel = None; }
        let ex = FeatureExtractor::new(cfg).unwrap();
        let mut best = 1e9f64;
        for _ in 0..5 { let t = Instant::now(); let m = ex.compute(&y).unwrap(); std::hint::black_box(m); best = best.min(t.elapsed().as_secs_f64()); }
        println!("{name}: {best:.4}");
    }
    let s = Stft::new(StftConfig::new(512).hop(256)).unwrap();
    let mut sc = s.scratch();
    let mut best = 1e9f64;
    for _ in 0..5 { let t = Instant::now(); let mut acc = 0.0; s.frames_with(&y, &mut sc, |_, sp| acc += sp[1].re).unwrap(); std::hint::black_box(acc); best = best.min(t.elapsed().as_secs_f64()); }
    println!("frames_with only: {best:.4}");
}
