//! Measures the spectral inconsistency of librosa's phase vocoder and of identity phase
//! locking on the committed clips at several rates (the table in docs/augment.md).
//! `cargo run --release --example phase_locking_report`
use mirkit::augment::{phase_vocoder, spectral_inconsistency, PhaseMode};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let st = mirkit::dsp::Stft::new(mirkit::dsp::StftConfig::new(2048).hop(512))?;
    println!("| clip | rate | librosa | identity locking | reduction |\n|---|---|---|---|---|");
    for clip in [
        "sorohanro_-_solo-trumpet-06.hq.ogg",
        "brahms_hungarian_dance_5.hq.ogg",
    ] {
        let p = format!("{}/data/clips/{clip}", env!("CARGO_MANIFEST_DIR"));
        let y = mirkit::io::load(
            &p,
            &mirkit::io::LoadOptions {
                duration: Some(20.0),
                ..Default::default()
            },
        )?
        .into_mono_vec();
        let d = st.stft(&y)?;
        for rate in [0.5, 0.81, 1.23, 2.0] {
            let a = spectral_inconsistency(&phase_vocoder(&d, rate, PhaseMode::Librosa)?)?;
            let b = spectral_inconsistency(&phase_vocoder(&d, rate, PhaseMode::IdentityLocking)?)?;
            println!(
                "| {} | {rate} | {a:.3} | {b:.3} | {:.0} % |",
                clip.split('.').next().unwrap(),
                100.0 * (1.0 - b / a)
            );
        }
    }
    Ok(())
}
