//! A spectrogram front end as a Candle module, so a model can take raw waveforms.
//!
//! [`MelFrontEnd`] runs a mirkit-dsp [`FeatureExtractor`] on every row of a `(B, samples)`
//! tensor and returns `(B, rows, frames)`: the very numbers mirkit-dsp computes (and so
//! librosa/torchaudio within the tolerances of docs/parity.md), for any preset. It is not
//! differentiable with respect to the waveform (it is the first layer; nothing before it
//! learns), and it runs on the CPU, moving the result to the input's device.

use crate::error::{NnError, Result};
use candle_core::{Device, Module, Tensor};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};

/// Waveform → (log-)mel spectrogram module.
#[derive(Debug, Clone)]
pub struct MelFrontEnd {
    ex: FeatureExtractor,
}

impl MelFrontEnd {
    /// A front end from a feature configuration (e.g. `FeatureConfig::won2020()`).
    pub fn new(cfg: FeatureConfig) -> Result<Self> {
        let ex = FeatureExtractor::new(cfg).map_err(|e| NnError::InvalidParameter {
            name: "front end",
            value: String::new(),
            why: e.to_string(),
        })?;
        Ok(Self { ex })
    }
    /// The extractor.
    pub fn extractor(&self) -> &FeatureExtractor {
        &self.ex
    }
    /// `(B, samples)` → `(B, rows, frames)`.
    pub fn compute(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dims();
        if d.len() != 2 {
            return Err(NnError::Shape {
                got: d.to_vec(),
                why: "expected (batch, samples)".into(),
            });
        }
        let rows: Vec<Vec<f32>> = x
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let f = self.ex.compute(r).map_err(|e| NnError::InvalidParameter {
                name: "input",
                value: format!("{} samples", r.len()),
                why: e.to_string(),
            })?;
            let (h, w) = f.view().dim();
            out.push(Tensor::from_vec(
                f.into_array().into_raw_vec_and_offset().0,
                (h, w),
                &Device::Cpu,
            )?);
        }
        Ok(Tensor::stack(&out, 0)?.to_device(x.device())?)
    }
}

impl Module for MelFrontEnd {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.compute(x)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}
