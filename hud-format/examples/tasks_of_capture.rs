//! Prints a capture's tasks frames (format 1.2): how ids were read, and per thread the events
//! with a task and the distinct tasks seen. `cargo run -p hud-format --features reader,tasks
//! --example tasks_of_capture -- capture.hudcap`
use std::collections::{BTreeMap, BTreeSet};

fn main() {
    let path = std::env::args().nth(1).expect("a capture");
    let capture = hud_format::reader::Capture::open(std::path::Path::new(&path)).unwrap();
    let mut per_thread: BTreeMap<u32, (usize, BTreeSet<u64>)> = BTreeMap::new();
    for f in capture
        .frames()
        .iter()
        .filter(|f| f.header.kind == hud_format::frame::FrameKind::Tasks)
    {
        let t = capture.tasks(f).unwrap();
        if !t.source.is_empty() {
            println!("source: {}", t.source);
        }
        if std::env::var_os("ROWS").is_some() {
            for i in 0..t.tid.len().min(40) {
                println!(
                    "  {} {} task {} tick {}",
                    t.tid[i], t.of[i], t.task[i], t.tick[i] as i64
                );
            }
        }
        for (tid, task) in t.tid.iter().zip(&t.task) {
            let e = per_thread.entry(*tid).or_default();
            e.0 += 1;
            e.1.insert(*task);
        }
    }
    for (tid, (n, tasks)) in per_thread {
        println!(
            "tid {tid}: {n} events, {} tasks: {:?}",
            tasks.len(),
            tasks.iter().take(12).collect::<Vec<_>>()
        );
    }
}
