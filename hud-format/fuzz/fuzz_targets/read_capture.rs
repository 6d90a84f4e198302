//! Any bytes: the reader returns an error or a capture, never panics or allocates unboundedly.
#![no_main]

use hud_format::reader::{Capture, FrameStream};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(capture) = Capture::from_bytes(data.to_vec()) {
        if let Ok(chunks) = capture.chunks() {
            for chunk in &chunks {
                let c = chunk.get();
                let _ = c.switches.ts.iter().count();
                let _ = c.samples.ts.iter().count();
                let _ = c.off_cpu.ts.iter().count();
            }
        }
        let _ = capture.objects();
    }
    if let Ok(mut stream) = FrameStream::new(data) {
        while let Ok(Some(frame)) = stream.next_frame() {
            let _ = frame.into_chunk();
        }
    }
});
