use mirkit::train::trainer::Trainable;
use mirkit::train::zoo::ScratchModel;
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmHWM")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}
fn main() {
    let b: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let ch: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let classes: Vec<String> = (0..8).map(|i| i.to_string()).collect();
    let m = ScratchModel::new("short-chunk-cnn", ch, &classes, 0).unwrap();
    let chunk = vec![0.1f32; 59049];
    let xs: Vec<_> = (0..b).map(|_| m.prepare(&chunk).unwrap()).collect();
    let x = candle_core::Tensor::stack(&xs, 0).unwrap();
    println!("input {:?} hwm {} MB", x.dims(), rss() / 1024);
    let l = m.forward_t(&x, true).unwrap();
    println!("forward hwm {} MB", rss() / 1024);
    let loss = l.sqr().unwrap().mean_all().unwrap();
    let _g = loss.backward().unwrap();
    println!("backward hwm {} MB", rss() / 1024);
}
