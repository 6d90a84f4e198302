//! Every input the fuzzer (`cargo xtask fuzz`) crashed on, kept in
//! `fuzz/corpus/regressions/` and replayed through the same pipeline the fuzz target runs:
//! reading strict and salvaging, the model, symbols, findings, the report.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzzing;

#[test]
fn every_input_the_fuzzer_crashed_on_is_read_without_a_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/regressions");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| fuzzing::run(&bytes));
        assert!(outcome.is_ok(), "{} panics", path.display());
        inputs += 1;
    }
    assert!(inputs >= 3, "the regression corpus is in {}", dir.display());
}
