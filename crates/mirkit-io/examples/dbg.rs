use mirkit_io::*;
fn main() {
    for p in ["data/clips/sorohanro_-_solo-trumpet-06.hq.ogg", "tests/fixtures/formats/tone.ogg", "tests/fixtures/formats/tone.mp3", "tests/fixtures/formats/tone.m4a"] {
        let d = Decoded::open(p).unwrap(); let _ = d;
    }
}
