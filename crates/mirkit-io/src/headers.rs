//! Structural checks of MP4/M4A and FLAC headers before symphonia reads them.
//!
//! FLAC: symphonia-metadata 0.5.5 allocates each Vorbis comment, and a picture's media
//! type, description and data, at the length the block declares (u32, up to 4 GiB)
//! before reading it; [`check_flac`] requires every metadata block to lie in the file
//! and every such length to fit in its block (2.5 GB found by fuzzing).
//!
//! MP4:
//! symphonia 0.5.5's MP4 demuxer sizes allocations from the file before checking them
//! against it: `Vec::with_capacity(count)` for the sample tables (`stsz`, `stco`, `co64`,
//! `stsc`, `stts`: up to 4·10⁹ entries from one u32), a buffer of a box's declared length
//! for `hdlr`, `ilst` data and the ALAC cookie, a packet buffer of each sample's size from
//! `stsz`/`trun`, and the ALAC decoder a frame buffer of the cookie's frame length. One
//! changed header field then asks for gigabytes (issue #19: 2.9 GB found by fuzzing,
//! 34–68 GB by the mutation campaign), which aborts the process. Rust cannot turn a
//! failed allocation into an error, so this module checks those fields first, without
//! allocating more than the `moov`/`moof` boxes themselves (at most 256 MiB):
//!
//! * every box lies inside its parent and the file (descending into the containers
//!   symphonia reads, the sample descriptions and iTunes metadata included);
//! * every table's entry count fits in its box;
//! * every sample size (`stsz`, `trun`, the `tfhd`/`trex` defaults) is at most the file's
//!   length;
//! * an ALAC cookie's frame length is 1–[`MAX_ALAC_FRAME`] samples.
//!
//! A file that fails is refused as malformed, naming the box; well-formed files pass
//! unchanged (the check reads and allocates nothing else).

use std::io::{Read, Seek, SeekFrom};

/// Largest `moov` or `moof` box read for the check (a two-hour file's sample tables are
/// a few MB).
const MAX_HEADER_BOX: u64 = 256 << 20;
/// Largest ALAC frame length accepted (Apple's encoder writes 4096; the format allows
/// other sizes, and 2²⁰ samples is 32 MiB of decoder buffer for 8 channels).
const MAX_ALAC_FRAME: u32 = 1 << 20;
/// Deepest box nesting followed.
const MAX_DEPTH: usize = 32;

/// Checks the headers of an MP4 or FLAC file (other files pass untouched) and leaves the
/// file at its start; `Err` is the reason, e.g. "malformed MP4 file (stsz box: …)".
pub(crate) fn check_file(f: &mut std::fs::File, file_len: u64) -> Result<(), String> {
    let mut head = [0u8; 8];
    let n = read_up_to(f, &mut head)?;
    let checked = if looks_like_mp4(&head[..n]) {
        check_mp4(f, file_len).map_err(|why| format!("malformed MP4 file ({why})"))
    } else if head[..n].starts_with(b"fLaC") {
        check_flac(f, file_len).map_err(|why| format!("malformed FLAC file ({why})"))
    } else {
        Ok(())
    };
    checked?;
    f.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Whether the file starts like an ISO base media (MP4, M4A, 3GP...) file: its first box
/// has one of the top-level box types.
fn looks_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"free" | b"skip" | b"wide" | b"pdin" | b"styp"
        )
}

/// Checks a FLAC file's metadata blocks (see the module documentation); `Err` says what
/// is wrong. Reads only the metadata blocks.
fn check_flac<F: Read + Seek>(f: &mut F, file_len: u64) -> Result<(), String> {
    let mut pos = 4u64; // "fLaC"
    loop {
        f.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut h = [0u8; 4];
        if read_up_to(f, &mut h)? < 4 {
            return Ok(()); // truncated: symphonia reports it
        }
        let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7f);
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as u64;
        if pos + 4 + len > file_len {
            return Err(format!(
                "metadata block of {len} bytes at byte {pos} runs past the end of the file"
            ));
        }
        if kind == 4 || kind == 6 {
            let mut b = vec![0u8; len as usize]; // at most 16 MiB (a 24-bit length)
            f.read_exact(&mut b).map_err(|e| e.to_string())?;
            if kind == 4 {
                vorbis_comment_lengths(&b)?;
            } else {
                picture_lengths(&b)?;
            }
        }
        if last {
            return Ok(());
        }
        pos += 4 + len;
    }
}

/// A Vorbis comment block (little-endian lengths): vendor string, count, comments; each
/// length must fit in what is left of the block.
fn vorbis_comment_lengths(b: &[u8]) -> Result<(), String> {
    let le = |at: usize| {
        b.get(at..at + 4)
            .map(|v| u32::from_le_bytes(v.try_into().unwrap()))
    };
    let bad = |what: &str, n: u32| {
        format!(
            "Vorbis comment: {what} of {n} bytes in a block of {}",
            b.len()
        )
    };
    let Some(vendor) = le(0) else { return Ok(()) };
    let mut at = 4u64 + vendor as u64;
    if at > b.len() as u64 {
        return Err(bad("vendor string", vendor));
    }
    let Some(count) = le(at as usize) else {
        return Ok(());
    };
    at += 4;
    for _ in 0..count {
        let Some(n) = le(at as usize) else {
            return Ok(()); // truncated list: symphonia reports the short read
        };
        at += 4 + n as u64;
        if at > b.len() as u64 {
            return Err(bad("a comment", n));
        }
    }
    Ok(())
}

/// A FLAC picture block (big-endian lengths): type, media type, description, four
/// fields, data; each length must fit in the block.
fn picture_lengths(b: &[u8]) -> Result<(), String> {
    let bad =
        |what: &str, n: u32| format!("picture: {what} of {n} bytes in a block of {}", b.len());
    let mut at = 4u64; // picture type
    for (what, skip_after) in [("media type", 0u64), ("description", 16), ("data", 0)] {
        let Some(n) = be32(b, at as usize) else {
            return Ok(());
        };
        at += 4 + n as u64;
        if at > b.len() as u64 {
            return Err(bad(what, n));
        }
        at += skip_after; // width, height, depth, colours after the description
    }
    Ok(())
}

/// Checks an MP4 file (see the module documentation); `Err` says what is wrong.
fn check_mp4<F: Read + Seek>(f: &mut F, file_len: u64) -> Result<(), String> {
    let mut pos = 0u64;
    while pos < file_len {
        f.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut h = [0u8; 16];
        let n = read_up_to(f, &mut h)?;
        if n < 8 {
            // trailing bytes too short for a box header: symphonia stops there
            return Ok(());
        }
        let (size, typ, hdr) = box_header(&h[..n], file_len - pos)
            .ok_or_else(|| format!("box at byte {pos} does not fit in the file"))?;
        if &typ == b"moov" || &typ == b"moof" {
            if size > MAX_HEADER_BOX {
                return Err(format!("{} box of {size} bytes", name(&typ)));
            }
            let mut payload = vec![0u8; (size - hdr) as usize];
            f.seek(SeekFrom::Start(pos + hdr))
                .map_err(|e| e.to_string())?;
            f.read_exact(&mut payload).map_err(|e| e.to_string())?;
            walk(&payload, &typ, file_len, 0)?;
        }
        pos += size;
    }
    Ok(())
}

fn read_up_to<F: Read>(f: &mut F, buf: &mut [u8]) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

fn name(t: &[u8; 4]) -> String {
    t.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `(total size, type, header length)` of the box at the start of `b`, `room` bytes being
/// available for it; `None` when it does not fit.
fn box_header(b: &[u8], room: u64) -> Option<(u64, [u8; 4], u64)> {
    let size32 = be32(b, 0)?;
    let typ: [u8; 4] = b.get(4..8)?.try_into().ok()?;
    let (size, hdr) = match size32 {
        0 => (room, 8),
        1 => (be64(b, 8)?, 16),
        s => (s as u64, 8),
    };
    (size >= hdr && size <= room).then_some((size, typ, hdr))
}

/// Checks the boxes in `b` (the payload of a box of type `parent`).
fn walk(b: &[u8], parent: &[u8; 4], file_len: u64, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("boxes nested too deeply".into());
    }
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let (size, typ, hdr) = box_header(&b[at..], (b.len() - at) as u64)
            .ok_or_else(|| format!("a box inside {} does not fit in it", name(parent)))?;
        let payload = &b[at + hdr as usize..at + size as usize];
        let bad = |why: &str| format!("{} box: {why}", name(&typ));
        match &typ {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"dinf" | b"edts" | b"udta"
            | b"mvex" | b"moof" | b"traf" | b"mfra" | b"ilst" => {
                walk(payload, &typ, file_len, depth + 1)?
            }
            // iTunes metadata: a full box (version and flags) holding `hdlr` and `ilst`
            b"meta" if payload.len() >= 4 => walk(&payload[4..], &typ, file_len, depth + 1)?,
            b"stsd" => sample_descriptions(payload, file_len, depth)?,
            b"stsz" => {
                let (size, count) = (field(payload, 4, &bad)?, field(payload, 8, &bad)?);
                if size == 0 {
                    table(payload, 12, count, 4, &bad)?;
                    for k in 0..count as usize {
                        sample_size(be32(payload, 12 + 4 * k).unwrap_or(0), file_len, &bad)?;
                    }
                } else {
                    sample_size(size, file_len, &bad)?;
                }
            }
            b"stco" => table(payload, 8, field(payload, 4, &bad)?, 4, &bad)?,
            b"co64" | b"stts" | b"ctts" => table(payload, 8, field(payload, 4, &bad)?, 8, &bad)?,
            b"stsc" => table(payload, 8, field(payload, 4, &bad)?, 12, &bad)?,
            b"elst" => {
                let wide = payload.first().copied().unwrap_or(0) == 1;
                table(
                    payload,
                    8,
                    field(payload, 4, &bad)?,
                    if wide { 20 } else { 12 },
                    &bad,
                )?
            }
            b"trex" => sample_size(field(payload, 16, &bad)?, file_len, &bad)?,
            b"tfhd" => {
                let flags = field(payload, 0, &bad)? & 0xff_ffff;
                let mut off = 8;
                for (flag, len) in [(0x1, 8), (0x2, 4), (0x8, 4)] {
                    if flags & flag != 0 {
                        off += len;
                    }
                }
                if flags & 0x10 != 0 {
                    sample_size(field(payload, off, &bad)?, file_len, &bad)?;
                }
            }
            b"trun" => {
                let flags = field(payload, 0, &bad)? & 0xff_ffff;
                let count = field(payload, 4, &bad)?;
                let mut first = 8;
                for flag in [0x1, 0x4] {
                    if flags & flag != 0 {
                        first += 4;
                    }
                }
                let per = 4 * (flags & 0xf00).count_ones() as usize;
                table(payload, first, count, per, &bad)?;
                if flags & 0x200 != 0 {
                    // the size follows the duration when both are present
                    let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
                    for k in 0..count as usize {
                        let v = be32(payload, first + k * per + size_at).unwrap_or(0);
                        sample_size(v, file_len, &bad)?;
                    }
                }
            }
            _ => {}
        }
        at += size as usize;
    }
    Ok(())
}

fn field(b: &[u8], at: usize, bad: &dyn Fn(&str) -> String) -> Result<u32, String> {
    be32(b, at).ok_or_else(|| bad("truncated"))
}

/// `count` entries of `per` bytes from `first` must fit in `b`.
fn table(
    b: &[u8],
    first: usize,
    count: u32,
    per: usize,
    bad: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    let need = (count as u64) * per as u64 + first as u64;
    if need > b.len() as u64 {
        return Err(bad(&format!(
            "{count} entries need {need} bytes, the box holds {}",
            b.len()
        )));
    }
    Ok(())
}

fn sample_size(v: u32, file_len: u64, bad: &dyn Fn(&str) -> String) -> Result<(), String> {
    if v as u64 > file_len {
        return Err(bad(&format!(
            "a sample of {v} bytes in a file of {file_len} bytes"
        )));
    }
    Ok(())
}

/// `stsd`: version and flags, an entry count, then sample entries whose children (after
/// the audio sample entry's fields) are boxes too; an ALAC cookie's frame length is
/// checked.
fn sample_descriptions(b: &[u8], file_len: u64, depth: usize) -> Result<(), String> {
    let mut at = 8usize; // version/flags, entry count
    while at + 8 <= b.len() {
        let (size, typ, hdr) = box_header(&b[at..], (b.len() - at) as u64)
            .ok_or("a sample description does not fit in its stsd box")?;
        let entry = &b[at + hdr as usize..at + size as usize];
        // audio sample entry: 28 bytes of fields (QuickTime sound description versions 1
        // and 2 add 16 and 36), then child boxes (esds, alac, dOps, dfLa, wave...)
        let version = entry
            .get(8..10)
            .map_or(0, |v| u16::from_be_bytes([v[0], v[1]]));
        let fields = match version {
            1 => 44,
            2 => 64,
            _ => 28,
        };
        if let Some(children) = entry.get(fields..) {
            walk(children, &typ, file_len, depth + 1)?;
            alac_cookie(children)?;
        }
        at += size as usize;
    }
    Ok(())
}

/// The ALAC cookie among a sample entry's children (an `alac` full box whose payload
/// starts with the frame length), if any.
fn alac_cookie(children: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    while at + 8 <= children.len() {
        let Some((size, typ, hdr)) = box_header(&children[at..], (children.len() - at) as u64)
        else {
            return Ok(()); // reported by `walk`
        };
        if &typ == b"alac" {
            let frame = be32(children, at + hdr as usize + 4).unwrap_or(0);
            if frame == 0 || frame > MAX_ALAC_FRAME {
                return Err(format!(
                    "alac box: frame length {frame} (1 to {MAX_ALAC_FRAME} samples)"
                ));
            }
        }
        at += size as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fixture(name: &str) -> Vec<u8> {
        let root = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../tests/fixtures");
        std::fs::read(root.join(name)).unwrap()
    }

    fn checked(b: &[u8]) -> Result<(), String> {
        check_mp4(&mut Cursor::new(b), b.len() as u64)
    }

    /// Offset of the first box of type `t` (its size field).
    fn find(b: &[u8], t: &[u8; 4]) -> usize {
        b.windows(4).position(|w| w == t).unwrap() - 4
    }

    #[test]
    fn well_formed_files_pass_and_mutated_fields_are_named() {
        for f in ["formats/tone.m4a", "formats/tone_alac.m4a"] {
            let b = fixture(f);
            assert!(looks_like_mp4(&b), "{f}");
            checked(&b).unwrap();
            // a sample table whose count cannot fit in its box
            let mut m = b.clone();
            let stsz = find(&m, b"stsz");
            m[stsz + 16..stsz + 20].copy_from_slice(&u32::MAX.to_be_bytes());
            let e = checked(&m).unwrap_err();
            assert!(e.contains("stsz") && e.contains("entries"), "{f}: {e}");
            // a sample larger than the file
            let mut m = b.clone();
            m[stsz + 20..stsz + 24].copy_from_slice(&0x7000_0000u32.to_be_bytes());
            let e = checked(&m).unwrap_err();
            assert!(e.contains("sample of 1879048192 bytes"), "{f}: {e}");
            // a box that claims more than its parent holds
            let mut m = b.clone();
            let stco = find(&m, b"stco");
            m[stco..stco + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
            let e = checked(&m).unwrap_err();
            assert!(e.contains("does not fit"), "{f}: {e}");
        }
        // the ALAC cookie's frame length (the second `alac`: the cookie box)
        let b = fixture("formats/tone_alac.m4a");
        let entry = find(&b, b"alac");
        let cookie = entry + 8 + find(&b[entry + 8..], b"alac");
        let mut m = b.clone();
        m[cookie + 12..cookie + 16].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        let e = checked(&m).unwrap_err();
        assert!(e.contains("frame length 4294967280"), "{e}");
        assert!(!looks_like_mp4(b"RIFF\0\0\0\0WAVE"));
    }
}
