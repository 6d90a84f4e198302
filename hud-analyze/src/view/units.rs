//! Units, one way for every view: nanoseconds as milliseconds or seconds, shares as percent. The
//! report, the cockpit and the exports print a duration alike because they convert it here.

/// Nanoseconds as milliseconds.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Nanoseconds as seconds.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A share (0 to 1) as percent.
pub fn pct(share: f64) -> f64 {
    share * 100.0
}

/// Milliseconds, short: no decimal from 100 ms on (the cockpit's narrow columns).
pub fn ms_short(ns: u64) -> String {
    let ms = ms(ns);
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conversions_are_the_plain_ones() {
        assert_eq!(super::ms(1_500_000), 1.5);
        assert_eq!(super::secs(2_500_000_000), 2.5);
        assert_eq!(super::pct(0.25), 25.0);
        assert_eq!(super::ms_short(12_345_678), "12.3");
        assert_eq!(super::ms_short(123_456_789), "123");
    }
}
