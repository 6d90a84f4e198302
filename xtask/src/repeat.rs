//! `cargo xtask test --repeat N`: the whole test suite N times in a row, then which tests failed
//! in which runs. A test that fails once in five is a bug (in the code or in the test), and one
//! run cannot show it.
//!
//! Each run's output goes to `target/repeat/run-K.log`; the console gets a line per run and the
//! table of tests that failed at least once, with the first line of their first panic.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{root, show};

/// A test's record over the runs.
#[derive(Default)]
struct Record {
    passed: u32,
    failed: Vec<u32>,
    /// The panic message of its first failure.
    first_failure: Option<String>,
}

/// Runs `test` (a fully set-up `cargo test` command) `runs` times; fails when any test failed
/// in any run.
pub fn run(test: impl Fn() -> Command, runs: u32) -> Result<()> {
    let logs = root().join("target/repeat");
    std::fs::create_dir_all(&logs)?;
    let mut records: BTreeMap<String, Record> = BTreeMap::new();
    for k in 1..=runs {
        let started = Instant::now();
        let log_path = logs.join(format!("run-{k}.log"));
        let mut cmd = test();
        cmd.arg("--no-fail-fast");
        eprintln!(
            "xtask: run {k}/{runs}: $ {} > {}",
            show(&cmd),
            log_path.display()
        );
        let output = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("cannot start {}", show(&cmd)))?;
        let mut log = output.stdout.clone();
        log.extend_from_slice(&output.stderr);
        std::fs::write(&log_path, &log)?;
        let outcome = parse(&output.stdout);
        let (mut passed, mut failed) = (0, 0);
        for (name, ok) in &outcome.results {
            let record = records.entry(name.clone()).or_default();
            if *ok {
                record.passed += 1;
                passed += 1;
            } else {
                record.failed.push(k);
                failed += 1;
                if record.first_failure.is_none() {
                    record.first_failure = outcome.panics.get(name).cloned();
                }
            }
        }
        eprintln!(
            "xtask: run {k}/{runs}: {passed} passed, {failed} failed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        if passed + failed == 0 || (!output.status.success() && failed == 0) {
            bail!(
                "run {k}: cargo test failed before running its tests ({}); see {}",
                output.status,
                log_path.display()
            );
        }
    }
    let flaky: Vec<(&String, &Record)> = records
        .iter()
        .filter(|(_, r)| !r.failed.is_empty())
        .collect();
    if flaky.is_empty() {
        eprintln!(
            "xtask: {} tests passed in each of {runs} runs",
            records.len()
        );
        return Ok(());
    }
    eprintln!("xtask: tests that failed (runs that failed / all runs):");
    for (name, record) in &flaky {
        eprintln!(
            "  {name}: {}/{} (runs {:?}): {}",
            record.failed.len(),
            record.failed.len() as u32 + record.passed,
            record.failed,
            record
                .first_failure
                .as_deref()
                .unwrap_or("(no panic message)")
        );
    }
    bail!(
        "{} tests failed in at least one of {runs} runs",
        flaky.len()
    )
}

/// What one `cargo test` run printed.
#[derive(Default)]
struct Outcome {
    /// Each test (`suite::name`, suites told apart by their binary) and whether it passed.
    results: Vec<(String, bool)>,
    /// The first line of each failed test's panic message.
    panics: BTreeMap<String, String>,
}

/// Reads libtest's output: `Running tests/e2e.rs (…)` names the suite, `test NAME ... ok|FAILED`
/// each result, and `---- NAME stdout ----` opens a failed test's output.
fn parse(stdout: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut suite = String::new();
    let mut in_output: Option<String> = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(rest) = line.trim_start().strip_prefix("Running ") {
            // `tests/e2e.rs (target/debug/deps/e2e-HASH)`: two crates' tests/e2e.rs differ by
            // their binary only.
            suite = match rest.split_once(" (") {
                Some((source, binary)) => {
                    let binary = binary.trim_end_matches(')');
                    let binary = binary.rsplit('/').next().unwrap_or(binary);
                    format!("{source} [{binary}]")
                }
                None => rest.to_owned(),
            };
            in_output = None;
        } else if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, result)) = rest.rsplit_once(" ... ") {
                let name = format!("{suite} {name}");
                match result.trim() {
                    "ok" => outcome.results.push((name, true)),
                    "FAILED" => outcome.results.push((name, false)),
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            in_output = Some(format!("{suite} {name}"));
        } else if let Some(name) = &in_output {
            if line.contains("panicked at") || outcome.panics.contains_key(name) {
                continue;
            }
            if !line.trim().is_empty() && !line.starts_with("note:") {
                outcome.panics.insert(name.clone(), line.trim().to_owned());
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_results_and_the_first_line_of_each_panic() {
        let out = b"     Running tests/e2e.rs (target/debug/deps/e2e-1)

running 2 tests
test a_test ... ok
test b_test ... FAILED

failures:

---- b_test stdout ----

thread 'b_test' panicked at hud-record/tests/e2e.rs:10:5:
sleep episode of 31 ms
more text
note: run with `RUST_BACKTRACE=1`

     Running tests/other.rs (target/debug/deps/other-2)
test a_test ... ok
";
        let outcome = parse(out);
        assert_eq!(
            outcome.results,
            vec![
                ("tests/e2e.rs [e2e-1] a_test".to_owned(), true),
                ("tests/e2e.rs [e2e-1] b_test".to_owned(), false),
                ("tests/other.rs [other-2] a_test".to_owned(), true),
            ]
        );
        assert_eq!(
            outcome
                .panics
                .get("tests/e2e.rs [e2e-1] b_test")
                .map(String::as_str),
            Some("sleep episode of 31 ms")
        );
    }
}
