//! Score and embedding utilities shared by every model: the `k` best tags, the mean over
//! windows, cosine similarity.
//!
//! ```
//! use mirkit_models::scores::{average, cosine, top_k};
//! let tags = vec!["rock".to_string(), "jazz".to_string()];
//! let mean = average(&[vec![0.25, 1.0], vec![0.75, 0.5]]);
//! assert_eq!(top_k(&tags, &mean, 1), vec![("jazz", 0.75)]);
//! assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.70710677).abs() < 1e-7);
//! ```

/// The `k` best `(tag, score)` pairs, best first (ties keep tag order).
pub fn top_k<'a>(tags: &'a [String], scores: &[f32], k: usize) -> Vec<(&'a str, f32)> {
    let mut idx: Vec<usize> = (0..scores.len().min(tags.len())).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx.into_iter()
        .take(k)
        .map(|i| (tags[i].as_str(), scores[i]))
        .collect()
}

/// Cosine similarity of two vectors, accumulated in `f64` (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        ab += (*x as f64) * (*y as f64);
        aa += (*x as f64).powi(2);
        bb += (*y as f64).powi(2);
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa.sqrt() * bb.sqrt())) as f32
    }
}

/// Element-wise mean of per-window vectors (summed in window order in `f32`, then divided).
pub fn average(windows: &[Vec<f32>]) -> Vec<f32> {
    let n = windows.len().max(1) as f32;
    let m = windows.first().map(|w| w.len()).unwrap_or(0);
    (0..m)
        .map(|j| windows.iter().map(|w| w[j]).sum::<f32>() / n)
        .collect()
}
