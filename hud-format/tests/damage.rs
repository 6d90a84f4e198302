//! Damaged captures: cut anywhere, bits flipped. An error or a shorter prefix, never a panic.

mod common;

use common::{decode_chunks, small_capture, Decoded};
use hud_format::reader::{Capture, Ending, FrameStream};
use hud_format::synth::Rng;
use hud_format::Error;

fn is_prefix(part: &Decoded, whole: &Decoded) -> bool {
    whole.switches.starts_with(&part.switches)
        && whole.samples.starts_with(&part.samples)
        && whole.off_cpu.starts_with(&part.off_cpu)
        && whole.threads.starts_with(&part.threads)
}

#[test]
fn a_capture_cut_at_any_byte_reads_its_prefix() {
    let bytes = small_capture();
    let whole = Capture::from_bytes(bytes.clone()).unwrap();
    let whole_events = decode_chunks(&whole.chunks().unwrap());
    let header_end = {
        let f = whole.frames()[1];
        f.offset as usize
    };
    let mut last_count = 0;
    for cut in 0..bytes.len() {
        let prefix = bytes[..cut].to_vec();
        match Capture::from_bytes(prefix.clone()) {
            Ok(capture) => {
                assert!(cut >= header_end, "read a header from {cut} bytes");
                assert_ne!(capture.ending(), &Ending::Clean, "cut {cut} reads as clean");
                assert!(capture.ending().notice().is_some());
                let events = decode_chunks(&capture.chunks().unwrap());
                assert!(is_prefix(&events, &whole_events), "cut {cut}: not a prefix");
                let count = events.switches.len() + events.samples.len() + events.off_cpu.len();
                assert!(
                    count >= last_count,
                    "cut {cut}: fewer events than a shorter cut"
                );
                last_count = count;
            }
            Err(Error::TooShort { .. }) | Err(Error::MissingHeader) => {
                assert!(
                    cut < header_end,
                    "cut {cut}: header lost after it was whole"
                )
            }
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
        }
        // The stream reader agrees: frames then a clean stop.
        if let Ok(mut stream) = FrameStream::new(&prefix[..]) {
            while let Ok(Some(_)) = stream.next_frame() {}
        }
    }
    assert_eq!(last_count, 370);
}

#[test]
fn zero_filled_tail_is_a_cut_not_corruption() {
    // A file system that crashed after growing the file, or a preallocated file: the frames
    // written are followed by zeros. Cut before the index (a whole chunk is last) and inside it.
    let whole = small_capture();
    let capture = Capture::from_bytes(whole.clone()).unwrap();
    let index_at = capture.frames().last().unwrap().offset as usize;
    for cut in [index_at, whole.len() - 3] {
        let mut bytes = whole[..cut].to_vec();
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        let capture = Capture::from_bytes(bytes).unwrap();
        assert!(
            matches!(capture.ending(), Ending::Truncated { .. }),
            "cut {cut}"
        );
        assert_eq!(
            decode_chunks(&capture.chunks().unwrap()).switches.len(),
            300
        );
    }
    // Zeros after a clean close are ignored.
    let mut bytes = whole.clone();
    bytes.extend([0u8; 100]);
    assert_eq!(Capture::from_bytes(bytes).unwrap().ending(), &Ending::Clean);
}

#[test]
fn flipped_bits_give_an_error_or_a_prefix() {
    let bytes = small_capture();
    let whole = Capture::from_bytes(bytes.clone()).unwrap();
    let whole_events = decode_chunks(&whole.chunks().unwrap());
    let mut rng = Rng::new(11);
    for round in 0..3000 {
        let mut damaged = bytes.clone();
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let bit = rng.below(damaged.len() as u64 * 8) as usize;
            damaged[bit / 8] ^= 1 << (bit % 8);
        }
        let Ok(capture) = Capture::from_bytes(damaged.clone()) else {
            continue;
        };
        match capture.chunks() {
            Ok(chunks) => {
                let events = decode_chunks(&chunks);
                // CRC32 catches any 1-4 bit flip in a frame; what reads must be what was written.
                assert!(
                    is_prefix(&events, &whole_events),
                    "round {round}: altered events read back"
                );
            }
            Err(Error::CorruptFrame { .. }) => {}
            Err(e) => panic!("round {round}: unexpected error {e}"),
        }
        let _ = capture.objects();
        if let Ok(mut stream) = FrameStream::new(&damaged[..]) {
            while let Ok(Some(_)) = stream.next_frame() {}
        }
    }
}

#[test]
fn errors_say_what_is_wrong() {
    let not_ours =
        Capture::from_bytes(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec()).unwrap_err();
    assert!(
        not_ours.to_string().contains("not a hud capture"),
        "{not_ours}"
    );

    let mut newer = small_capture();
    newer[8] = 9;
    let msg = Capture::from_bytes(newer).unwrap_err().to_string();
    let version = format!("9.{}", hud_format::frame::FORMAT_MINOR);
    assert!(msg.contains("newer hud") && msg.contains(&version), "{msg}");

    let mut corrupt = small_capture();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0x10;
    let err = Capture::from_bytes(corrupt)
        .and_then(|c| c.chunks().map(|_| ()))
        .unwrap_err();
    assert!(err.to_string().contains("corrupt at byte"), "{err}");

    let missing = Capture::open(std::path::Path::new("/nonexistent/x.hud")).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/x.hud"),
        "{missing}"
    );
}

#[test]
fn huge_declared_lengths_are_refused_before_allocating() {
    use hud_format::frame::{Codec, FrameHeader, FrameKind};
    let mut bytes = small_capture();
    let first_frame = hud_format::frame::PREAMBLE_LEN;
    // A well-formed header (valid checksum) that claims a 4 GiB payload.
    let mut h = FrameHeader::for_payload(FrameKind::Header, Codec::Zstd, b"", 0);
    h.raw_len = u32::MAX;
    h.stored_len = 16;
    bytes[first_frame..first_frame + 24].copy_from_slice(&h.encode());
    let err = Capture::from_bytes(bytes).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn frames_of_a_newer_minor_kind_are_skipped() {
    use hud_format::frame::{Codec, FrameHeader, FrameKind};
    let bytes = small_capture();
    let whole = Capture::from_bytes(bytes.clone()).unwrap();
    let expected = decode_chunks(&whole.chunks().unwrap());
    // A frame of kind 200, as a later minor version may add, after every chunk frame.
    let payload = b"something a newer hud writes";
    let extra = {
        let h =
            FrameHeader::for_payload(FrameKind::Unknown(200), Codec::Raw, payload, payload.len());
        let mut f = h.encode().to_vec();
        f.extend_from_slice(payload);
        f
    };
    let mut with_extra = bytes[..whole.frames()[0].offset as usize].to_vec();
    let frames = whole.frames();
    for (i, f) in frames.iter().enumerate() {
        let end = frames
            .get(i + 1)
            .map_or(bytes.len(), |next| next.offset as usize);
        with_extra.extend_from_slice(&bytes[f.offset as usize..end]);
        if f.header.kind == FrameKind::Chunk {
            with_extra.extend_from_slice(&extra);
        }
    }
    let read = Capture::from_bytes(with_extra.clone()).unwrap();
    assert_eq!(read.ending(), &Ending::Clean);
    assert!(read
        .frames()
        .iter()
        .any(|f| f.header.kind == FrameKind::Unknown(200)));
    let events = decode_chunks(&read.chunks().unwrap());
    assert!(is_prefix(&events, &expected) && is_prefix(&expected, &events));
    // The stream reader passes them by as well.
    let mut stream = FrameStream::new(&with_extra[..]).unwrap();
    let mut kinds = Vec::new();
    while let Some(frame) = stream.next_frame().unwrap() {
        kinds.push(frame.kind);
    }
    assert!(kinds.contains(&FrameKind::Unknown(200)));
    assert_eq!(kinds.last(), Some(&FrameKind::Index));
}
