//! Where each given executable keeps its running Tokio task id and scheduler tick, as hud-record
//! reads it at attach (or why it cannot), and how long finding it took:
//! `cargo run -p hud-format --features tasks --example task_id_layout -- BINARY...`
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let started = std::time::Instant::now();
        let found = hud_format::elf::task_id::resolve(&bytes);
        println!("{path} ({:?}):", started.elapsed());
        match found {
            Ok(layout) => println!("  {layout:#?}"),
            Err(why) => println!("  no task ids: {why}"),
        }
    }
}
