//! Any capture, damaged or crafted, through the analyzer's whole pipeline: an error or an
//! analysis, never a panic, a hang or an allocation past libFuzzer's limits. Mutations are
//! structure-aware (see the crate's docs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hud_analyze_fuzz::run(data);
});

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    hud_analyze_fuzz::mutate(data, size, max_size, seed, |buf, size, max| {
        libfuzzer_sys::fuzzer_mutate(buf, size, max)
    })
});
