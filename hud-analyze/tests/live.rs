//! A live view's bounded memory, without eBPF: a model that forgets its oldest detail, with the
//! findings of what it forgot folded into session totals, gives the whole capture's answer.

mod support;

use std::collections::BTreeMap;

use hud_analyze::analysis::earlier::Earlier;
use hud_analyze::analysis::hotspots::Ranking;
use hud_analyze::analysis::{Analysis, Options, Window};
use hud_analyze::source::load_file;
use hud_analyze::symbols::Symbols;
use hud_format::reader::Capture;
use support::*;

/// (count, total ns) per blocker, by kind and function.
fn by_function(
    blockers: &[hud_analyze::analysis::detect::Blocker],
) -> BTreeMap<String, (usize, u64)> {
    blockers
        .iter()
        .map(|b| {
            (
                format!("{} {}", b.kind.name(), b.blame.function),
                (b.count(), b.total()),
            )
        })
        .collect()
}

#[test]
fn forgetting_the_oldest_detail_keeps_the_session_totals_exact() {
    let (bytes, addresses) = busy_service().finish();
    let model = load_file(&Capture::from_bytes(bytes).unwrap())
        .unwrap()
        .model;
    let by_address: std::collections::HashMap<u64, _> =
        addresses.into_iter().map(|(f, a)| (a, f)).collect();
    // One symbol set for both analyses, as the live symbolizer keeps one for the session:
    // blockers are matched across analyses by their interned names.
    let symbols = Symbols::from_resolver(&model, |a| {
        by_address.get(&a).cloned().into_iter().collect()
    });
    let whole = Analysis::new(Options::default(), model.clone(), symbols.clone());

    // Forget the first half, at a time no long poll spans (busy_service's polls run in the first
    // half of every 80 ms).
    let cut = START + 1_020 * MS;
    let forgotten = whole.findings_to_forget(Window {
        from: model.start,
        to: cut,
    });
    let mut earlier = Earlier::default();
    earlier.fold(&forgotten, model.start, cut - model.start);
    let mut rest = model.clone();
    rest.forget_before(cut);
    assert!(rest.samples.len() < model.samples.len() / 2 + 10);
    let detail = Analysis::new(Options::default(), rest, symbols);
    let session = earlier.accumulate(
        &detail.findings(Window::ALL, Ranking::EVERY_ROW),
        detail.model.duration(),
        RANKING,
    );
    let expected = whole.findings(Window::ALL, RANKING);

    assert_eq!(
        by_function(&session.blockers),
        by_function(&expected.blockers)
    );
    assert!(session.blockers.iter().any(|b| b.forgotten.count > 0));
    assert_eq!(session.hotspots.samples, expected.hotspots.samples);
    let top = |h: &hud_analyze::analysis::hotspots::Hotspots| {
        h.by_function
            .iter()
            .map(|r| (r.key.function.to_string(), r.self_samples))
            .collect::<Vec<_>>()
    };
    assert_eq!(top(&session.hotspots), top(&expected.hotspots));
    for t in &expected.threads {
        let s = session.threads.iter().find(|s| s.tid == t.tid).unwrap();
        assert_eq!(
            (s.on_cpu_ns, s.samples),
            (t.on_cpu_ns, t.samples),
            "thread {}",
            t.tid
        );
    }
    assert_eq!(session.off_cpu_episodes, expected.off_cpu_episodes);
    // The histogram counts forgotten episodes too.
    let sleep = session
        .blockers
        .iter()
        .find(|b| b.blame.function.contains("slow"))
        .unwrap();
    let counted: usize = sleep.histogram().iter().map(|(_, n)| n).sum();
    assert_eq!(counted, sleep.count());
}
