//! Column encodings: timestamps as zigzag LEB128 deltas.
//!
//! Ring-buffer order is almost, not exactly, time order (several CPUs reserve concurrently), so a
//! delta can be negative: zigzag keeps small negative deltas small. Most deltas fit in 2–3 bytes.

/// Appends `value - *prev` as a zigzag varint to `out` and makes `value` the new `prev`.
pub fn push_delta(out: &mut Vec<u8>, prev: &mut u64, value: u64) {
    let delta = value.wrapping_sub(*prev) as i64;
    *prev = value;
    let mut zz = ((delta << 1) ^ (delta >> 63)) as u64;
    while zz >= 0x80 {
        out.push((zz as u8) | 0x80);
        zz >>= 7;
    }
    out.push(zz as u8);
}

/// Iterates the absolute values of a delta column in place, without allocating.
///
/// Stops early (yields fewer values) on a malformed varint; callers compare the count with the
/// other columns' lengths, which the reader does when it validates a chunk.
#[derive(Clone, Debug)]
pub struct DeltaIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    prev: u64,
}

impl<'a> DeltaIter<'a> {
    /// Decodes `bytes`, starting from `base`.
    pub fn new(bytes: &'a [u8], base: u64) -> Self {
        Self {
            bytes,
            pos: 0,
            prev: base,
        }
    }
}

impl Iterator for DeltaIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        let mut zz: u64 = 0;
        let mut shift = 0u32;
        loop {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            if shift >= 64 {
                self.pos = self.bytes.len();
                return None;
            }
            zz |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let delta = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        self.prev = self.prev.wrapping_add(delta as u64);
        Some(self.prev)
    }
}

/// Number of values in a delta column (counts terminating bytes).
pub fn delta_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b & 0x80 == 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_backwards_steps() {
        let values = [1_000u64, 1_000, 1_500, 1_400, u64::MAX, 0, 7, 1 << 40];
        let mut bytes = Vec::new();
        let mut prev = 900;
        for v in values {
            push_delta(&mut bytes, &mut prev, v);
        }
        assert_eq!(delta_count(&bytes), values.len());
        let back: Vec<u64> = DeltaIter::new(&bytes, 900).collect();
        assert_eq!(back, values);
    }

    #[test]
    fn malformed_varint_stops() {
        let bytes = [0xffu8; 20];
        assert_eq!(DeltaIter::new(&bytes, 0).count(), 0);
    }
}
