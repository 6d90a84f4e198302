//! Crafted and damaged captures, made with the writer and re-sealed with correct checksums (the
//! `craft` module), so that the reader meets the craft itself: ids that claim to be far ahead,
//! compression bombs, endless streams, damaged frames in the middle, captures glued together.

mod common;

use common::{decode_chunks, small_capture};
use hud_format::craft::{self, OwnedFrame};
use hud_format::frame::{Codec, FrameKind};
use hud_format::reader::{Capture, Ending, FrameStream, ReadOptions, Stacks};
use hud_format::synth::{write_mix, Mix};
use hud_format::writer::WriterOptions;
use hud_format::Error;

fn chunk_positions(frames: &[OwnedFrame]) -> Vec<usize> {
    (0..frames.len())
        .filter(|&i| frames[i].kind == FrameKind::Chunk)
        .collect()
}

/// The last chunk that defines stack nodes (not the first chunk).
fn later_chunk_with_stacks(frames: &[OwnedFrame]) -> usize {
    chunk_positions(frames)
        .into_iter()
        .skip(1)
        .rfind(|&i| !frames[i].chunk().unwrap().stacks.parent.is_empty())
        .expect("a later chunk defines stacks")
}

#[test]
fn stack_ids_far_ahead_allocate_nothing() {
    let mut frames = craft::split(&small_capture()).unwrap();
    let at = later_chunk_with_stacks(&frames);
    for first_id in [0xFFFF_FF00u32, 100_000_000] {
        let mut chunk = frames[at].chunk().unwrap();
        let defined = chunk.stacks.parent.len();
        chunk.stacks.first_id = first_id;
        // Make every node a root, so the table stays consistent under its new ids.
        chunk.stacks.parent.iter_mut().for_each(|p| *p = 0);
        frames[at] = OwnedFrame::from_chunk(&chunk).unwrap();
        let capture = Capture::from_bytes(craft::seal(&frames, Codec::Zstd)).unwrap();
        let mut stacks = Stacks::default();
        let mut nodes = 0;
        for data in capture.chunks().unwrap() {
            nodes += data.get().stacks.parent.len();
            stacks.add(data.get()).unwrap();
        }
        // Before: the table was resized to `first_id` nodes (5 GB, then the OOM killer).
        assert_eq!(stacks.len(), nodes, "first_id {first_id}");
        // The ids past the gap still resolve, and ids in the gap are unknown.
        assert_ne!(stacks.local(first_id), 0);
        assert_eq!(stacks.local(first_id - 1), 0);
        assert_eq!(stacks.local(first_id + defined as u32), 0);
    }
}

#[test]
fn a_chunk_redefining_stack_ids_is_refused() {
    let frames = craft::split(&small_capture()).unwrap();
    let at = later_chunk_with_stacks(&frames);
    let capture = Capture::from_bytes(craft::seal(&frames, Codec::Raw)).unwrap();
    let chunks = capture.chunks().unwrap();
    let mut stacks = Stacks::default();
    let index = chunk_positions(&frames)
        .iter()
        .position(|&i| i == at)
        .unwrap();
    for data in &chunks[..=index] {
        stacks.add(data.get()).unwrap();
    }
    let before = stacks.len();
    let err = stacks.add(chunks[index].get()).unwrap_err();
    assert!(err.contains("already defined"), "{err}");
    assert_eq!(stacks.len(), before, "nothing was added");
}

/// A capture whose chunks each claim `raw_len` bytes of zeros: tiny on disk, huge in memory.
fn bomb(frames: usize, raw_len: usize) -> Vec<u8> {
    let mut parts = craft::split(&small_capture()).unwrap();
    parts.truncate(1);
    let zeros = vec![0u8; raw_len];
    let mut bytes = craft::seal(&parts, Codec::Zstd);
    for _ in 0..frames {
        craft::append_frame(&mut bytes, FrameKind::Chunk, &zeros, Codec::Zstd);
    }
    bytes
}

#[test]
fn a_compression_bomb_is_refused_before_anything_is_decompressed() {
    let bytes = bomb(20, 48 << 20);
    assert!(bytes.len() < 200_000, "{} bytes on disk", bytes.len());
    let err = Capture::from_bytes(bytes.clone()).unwrap_err();
    assert!(matches!(err, Error::OverBudget { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("--max-decompressed"), "{msg}");
    // Salvaging does not get around it.
    let err = Capture::from_bytes_with(bytes.clone(), &ReadOptions::salvaging()).unwrap_err();
    assert!(matches!(err, Error::OverBudget { .. }), "{err}");
    // Nor does a stream: it stops at the first frame over the budget.
    let mut stream = FrameStream::new(&bytes[..]).unwrap();
    let mut read = 0;
    let err = loop {
        match stream.next_raw() {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("the whole bomb was read"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::OverBudget { .. }), "{err}");
    assert!(read <= 3, "{read} frames read before the budget stopped it");
    // Asking for more lets it through the budget; the zeros then fail as archives, one by one.
    let options = ReadOptions {
        max_decompressed: Some(2 << 30),
        ..ReadOptions::default()
    };
    let capture = Capture::from_bytes_with(bytes, &options).unwrap();
    assert!(capture.chunks().is_err());
}

#[test]
fn a_real_capture_is_well_inside_the_budget() {
    let bytes = write_mix(Vec::new(), &Mix::benchmark(), WriterOptions::default()).unwrap();
    let capture = Capture::from_bytes(bytes.clone()).unwrap();
    let raw: u64 = capture
        .frames()
        .iter()
        .map(|f| u64::from(f.header.raw_len))
        .sum();
    let ratio = raw as f64 / bytes.len() as f64;
    assert!(
        ratio < 10.0,
        "the synthetic service decompresses {ratio:.1} times its size"
    );
}

#[test]
fn a_stream_is_refused_from_its_first_bytes() {
    // Endless input: before, it was read to its end (it has none) before the magic was checked.
    let err = FrameStream::new(std::io::repeat(b'y')).err().unwrap();
    assert!(matches!(err, Error::NotACapture { .. }), "{err}");
    let err = Capture::from_reader(std::io::repeat(0), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotACapture { .. }), "{err}");
    // A valid preamble followed by endless zeros reads at most the budget, then stops.
    let mut endless = small_capture()[..16].to_vec();
    endless.extend(std::iter::repeat_n(0u8, 1 << 20));
    let options = ReadOptions {
        max_decompressed: Some(1 << 20),
        ..ReadOptions::default()
    };
    let reader = std::io::Read::chain(std::io::Cursor::new(endless), std::io::repeat(0));
    assert!(Capture::from_reader(reader, &options).is_err());
}

/// Flips one byte inside the payload of the `nth` chunk frame.
fn damage_chunk_payload(bytes: &mut [u8], nth: usize) -> u64 {
    let capture = Capture::from_bytes(bytes.to_vec()).unwrap();
    let frame = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .nth(nth)
        .copied()
        .unwrap();
    let at = frame.offset as usize + 24 + frame.header.stored_len as usize / 2;
    bytes[at] ^= 0x5a;
    frame.offset
}

#[test]
fn salvaging_skips_a_damaged_chunk_and_keeps_the_rest() {
    let whole = small_capture();
    let all = decode_chunks(
        &Capture::from_bytes(whole.clone())
            .unwrap()
            .chunks()
            .unwrap(),
    );
    let mut bytes = whole.clone();
    let offset = damage_chunk_payload(&mut bytes, 3);
    // Strict: an error that names the frame and the fault.
    let err = Capture::from_bytes(bytes.clone())
        .unwrap()
        .chunks()
        .map(|_| ())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("byte {offset}")) && msg.contains("chunk frame"),
        "{msg}"
    );
    // Salvaging: every other chunk decodes.
    let capture = Capture::from_bytes_with(bytes, &ReadOptions::salvaging()).unwrap();
    let chunks: Vec<_> = capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == FrameKind::Chunk)
        .map(|f| capture.chunk(f))
        .collect();
    assert_eq!(chunks.iter().filter(|c| c.is_err()).count(), 1);
    let good: Vec<_> = chunks.into_iter().filter_map(Result::ok).collect();
    let events = decode_chunks(&good);
    assert!(events.switches.len() < all.switches.len());
    assert!(events.switches.len() >= all.switches.len() - 40);
    assert_eq!(capture.ending(), &Ending::Clean);
}

#[test]
fn salvaging_finds_the_frame_after_a_damaged_frame_header() {
    let whole = small_capture();
    let capture = Capture::from_bytes(whole.clone()).unwrap();
    let frames = capture.frames().to_vec();
    let victim = frames[4];
    let mut bytes = whole.clone();
    // The stored length, so that without the checksum a reader would be lost.
    bytes[victim.offset as usize + 9] ^= 0xff;
    assert!(
        Capture::from_bytes(bytes.clone()).is_err(),
        "strict refuses"
    );
    let salvaged = Capture::from_bytes_with(bytes.clone(), &ReadOptions::salvaging()).unwrap();
    assert_eq!(salvaged.frames().len(), frames.len() - 1);
    assert_eq!(
        salvaged.ending(),
        &Ending::Clean,
        "the index was found again"
    );
    let damage = salvaged.damage();
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0].offset, victim.offset);
    assert_eq!(damage[0].offset + damage[0].len, frames[5].offset);
    assert!(damage[0].reason.contains("checksum"), "{}", damage[0]);
    // The stream reader finds the same frames.
    let mut stream = FrameStream::with_options(&bytes[..], ReadOptions::salvaging()).unwrap();
    let mut offsets = Vec::new();
    while let Some(frame) = stream.next_raw().unwrap() {
        offsets.push(frame.offset);
    }
    let expected: Vec<u64> = salvaged.frames().iter().map(|f| f.offset).collect();
    assert_eq!(offsets, expected);
    assert_eq!(stream.damage(), damage);
    assert_eq!(stream.ending(), Some(&Ending::Clean));
}

#[test]
fn concatenated_captures_are_read_once() {
    let one = small_capture();
    let unclosed = {
        let capture = Capture::from_bytes(one.clone()).unwrap();
        one[..capture.frames().last().unwrap().offset as usize].to_vec()
    };
    for first in [one.clone(), unclosed] {
        let mut glued = first.clone();
        glued.extend_from_slice(&one);
        assert!(
            Capture::from_bytes(glued.clone()).is_err(),
            "strict refuses"
        );
        let capture = Capture::from_bytes_with(glued.clone(), &ReadOptions::salvaging()).unwrap();
        let events = decode_chunks(&capture.chunks().unwrap());
        assert_eq!(events.switches.len(), 300, "events are not counted twice");
        assert_eq!(capture.damage().len(), 1);
        let mut stream = FrameStream::with_options(&glued[..], ReadOptions::salvaging()).unwrap();
        let mut chunks = 0;
        while let Some(frame) = stream.next_raw().unwrap() {
            chunks += usize::from(frame.kind() == FrameKind::Chunk);
        }
        assert_eq!(
            chunks,
            capture
                .frames()
                .iter()
                .filter(|f| f.header.kind == FrameKind::Chunk)
                .count()
        );
    }
}

#[test]
fn a_bad_archive_says_which_frame_and_what_is_wrong() {
    let mut frames = craft::split(&small_capture()).unwrap();
    let at = chunk_positions(&frames)[1];
    let len = frames[at].payload.len();
    // A relative pointer near the archive's end pointing far outside it.
    for b in &mut frames[at].payload[len - 8..len - 4] {
        *b = 0x7f;
    }
    let capture = Capture::from_bytes(craft::seal(&frames, Codec::Raw)).unwrap();
    let err = capture.chunks().map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("chunk frame: invalid archive"), "{err}");
    assert!(!err.contains("without error information"), "{err}");
}
