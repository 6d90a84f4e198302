//! The symbol cache's file (hud-analyze keeps one per object build between analyses): the frames
//! of each address looked up, and the frames put back above each call site, with names and
//! paths in a table of strings.
//!
//! Layout: the magic `HUDSYM01`, then one zstd frame with its checksum holding, little-endian:
//! the strings (`u32` count, then `u32` length + UTF-8 each); the lookups (`u32` count, then
//! `u64` file offset, `u8` resolved-to-a-line, frames); the missed frames (`u32` count, then `u64`
//! call offset, `u32` length + callee key, `u64` callee offset, `u8` callee-is-leaf, `u32`
//! functions put back, frames). Frames: `u32` count, then per frame `u32` function, `u32` file
//! (`u32::MAX`: none), `u32` line, `u8` flags (bit 0 inlined, bits 1–2 how it was put back).
//! Every count and index is checked against the bytes left before anything is allocated.

use std::io::{Read, Write};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"HUDSYM01";
/// Largest payload decoded (a damaged length must not make a reader allocate the world).
pub const MAX_PAYLOAD: usize = 1 << 30;

/// One frame; names and paths are indices into [`Contents::strings`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CachedFrame {
    pub function: u32,
    pub file: Option<u32>,
    pub line: u32,
    pub inlined: bool,
    /// How a frame the walk missed was put back: 0 not, 1 a tail call, 2 a leaf's caller.
    pub recovered: u8,
}

/// The frames of one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub offset: u64,
    /// The innermost frame has a file and line.
    pub line: bool,
    pub frames: Vec<CachedFrame>,
}

/// The frames put back above one call site, towards one callee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missed {
    pub offset: u64,
    /// The callee's object, as its own file is named (`BUILDID-MODE`).
    pub callee: String,
    pub callee_offset: u64,
    pub leaf: bool,
    /// Functions put back.
    pub hops: u32,
    pub frames: Vec<CachedFrame>,
}

/// A whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub strings: Vec<String>,
    pub lookups: Vec<Lookup>,
    pub missed: Vec<Missed>,
}

/// Why a file was not read.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged;

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a symbol cache file, or a damaged one")
    }
}

impl std::error::Error for Damaged {}

/// The file's bytes.
pub fn encode(contents: &Contents) -> std::io::Result<Vec<u8>> {
    let mut p = Vec::new();
    let u32_ = |p: &mut Vec<u8>, v: u32| p.extend_from_slice(&v.to_le_bytes());
    let u64_ = |p: &mut Vec<u8>, v: u64| p.extend_from_slice(&v.to_le_bytes());
    let text = |p: &mut Vec<u8>, s: &str| {
        u32_(p, s.len() as u32);
        p.extend_from_slice(s.as_bytes());
    };
    let frames = |p: &mut Vec<u8>, frames: &[CachedFrame]| {
        u32_(p, frames.len() as u32);
        for f in frames {
            u32_(p, f.function);
            u32_(p, f.file.unwrap_or(u32::MAX));
            u32_(p, f.line);
            p.push(u8::from(f.inlined) | (f.recovered & 3) << 1);
        }
    };
    u32_(&mut p, contents.strings.len() as u32);
    for s in &contents.strings {
        text(&mut p, s);
    }
    u32_(&mut p, contents.lookups.len() as u32);
    for l in &contents.lookups {
        u64_(&mut p, l.offset);
        p.push(u8::from(l.line));
        frames(&mut p, &l.frames);
    }
    u32_(&mut p, contents.missed.len() as u32);
    for m in &contents.missed {
        u64_(&mut p, m.offset);
        text(&mut p, &m.callee);
        u64_(&mut p, m.callee_offset);
        p.push(u8::from(m.leaf));
        u32_(&mut p, m.hops);
        frames(&mut p, &m.frames);
    }
    let mut out = MAGIC.to_vec();
    let mut encoder = zstd::Encoder::new(&mut out, 3)?;
    encoder.include_checksum(true)?;
    encoder.write_all(&p)?;
    encoder.finish()?;
    Ok(out)
}

/// Reads a file's bytes: anything but a whole, undamaged file is [`Damaged`].
pub fn decode(bytes: &[u8]) -> Result<Contents, Damaged> {
    let payload = bytes.strip_prefix(MAGIC.as_slice()).ok_or(Damaged)?;
    let mut decoded = Vec::new();
    let decoder = zstd::Decoder::new(payload).map_err(|_| Damaged)?;
    decoder
        .take(MAX_PAYLOAD as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|_| Damaged)?;
    if decoded.len() > MAX_PAYLOAD {
        return Err(Damaged);
    }
    decode_payload(&decoded).ok_or(Damaged)
}

/// A bounds-checked reader over the payload.
struct Cursor<'b>(&'b [u8]);

impl<'b> Cursor<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A count of items at least `size` bytes each: no more than the bytes left can hold.
    fn count(&mut self, size: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(size) <= self.0.len()).then_some(n)
    }
    fn text(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok().map(str::to_owned)
    }
    fn frames(&mut self, strings: usize) -> Option<Vec<CachedFrame>> {
        let n = self.count(13)?;
        (0..n)
            .map(|_| {
                let function = self.u32()?;
                let file = self.u32()?;
                let line = self.u32()?;
                let flags = self.u8()?;
                let known = |i: u32| (i as usize) < strings;
                let recovered = flags >> 1;
                (known(function) && (file == u32::MAX || known(file)) && recovered <= 2).then_some(
                    CachedFrame {
                        function,
                        file: (file != u32::MAX).then_some(file),
                        line,
                        inlined: flags & 1 != 0,
                        recovered,
                    },
                )
            })
            .collect()
    }
}

fn decode_payload(payload: &[u8]) -> Option<Contents> {
    let mut c = Cursor(payload);
    let mut contents = Contents::default();
    for _ in 0..c.count(4)? {
        contents.strings.push(c.text()?);
    }
    let strings = contents.strings.len();
    for _ in 0..c.count(13)? {
        let offset = c.u64()?;
        let line = c.u8()? != 0;
        let frames = c.frames(strings)?;
        contents.lookups.push(Lookup {
            offset,
            line,
            frames,
        });
    }
    for _ in 0..c.count(25)? {
        let offset = c.u64()?;
        let callee = c.text()?;
        let callee_offset = c.u64()?;
        let leaf = c.u8()? != 0;
        let hops = c.u32()?;
        let frames = c.frames(strings)?;
        contents.missed.push(Missed {
            offset,
            callee,
            callee_offset,
            leaf,
            hops,
            frames,
        });
    }
    c.0.is_empty().then_some(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Contents {
        let frame = |function, file, line, recovered| CachedFrame {
            function,
            file,
            line,
            inlined: function == 0,
            recovered,
        };
        Contents {
            strings: vec!["app::inner".into(), "app::outer".into(), "src/a.rs".into()],
            lookups: vec![
                Lookup {
                    offset: 0x10,
                    line: true,
                    frames: vec![frame(0, Some(2), 7, 0), frame(1, Some(2), 20, 0)],
                },
                Lookup {
                    offset: 0x20,
                    line: false,
                    frames: vec![frame(1, None, 0, 0)],
                },
            ],
            missed: vec![Missed {
                offset: 0x30,
                callee: "cd34-nl".into(),
                callee_offset: 0x40,
                leaf: true,
                hops: 1,
                frames: vec![frame(1, Some(2), 3, 1)],
            }],
        }
    }

    #[test]
    fn a_file_reads_back_as_written() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(decode(&bytes), Ok(sample()));
        assert_eq!(
            decode(&encode(&Contents::default()).unwrap()),
            Ok(Contents::default())
        );
    }

    #[test]
    fn damage_is_told_never_read() {
        let bytes = encode(&sample()).unwrap();
        for cut in [0, 4, 8, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), Err(Damaged), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 6;
        flipped[at] ^= 0x55;
        assert_eq!(decode(&flipped), Err(Damaged));
        // Payloads that lie about their counts, or point past the strings.
        assert!(decode_payload(&[0xff, 0xff, 0xff, 0x7f]).is_none());
        assert!(decode_payload(&[0, 0, 0, 0, 1, 0, 0, 0]).is_none());
        let mut wrong_index = sample();
        wrong_index.lookups[0].frames[0].function = 9;
        let bytes = encode(&wrong_index).unwrap();
        assert_eq!(decode(&bytes), Err(Damaged));
    }
}
