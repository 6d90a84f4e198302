//! Where each given executable keeps its running Tokio task id and scheduler tick, as hud-record
//! reads it at attach (or why it cannot), its task poll functions (what `--poll-probes` probes),
//! and how long finding each took:
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
        let started = std::time::Instant::now();
        let found = hud_format::elf::task_polls::find(&bytes);
        println!("  poll functions ({:?}):", started.elapsed());
        match found {
            Ok(polls) => {
                println!("  own crates: {}", polls.own_crates.join(", "));
                println!("  task id at a poll's entry: {:?}", polls.task_id);
                let own = hud_format::elf::task_polls::PollFilter::OwnCrates;
                let selected: Vec<u64> = polls.selected(&own).map(|f| f.address).collect();
                for f in &polls.fns {
                    let mark = if selected.contains(&f.address) {
                        "*"
                    } else {
                        " "
                    };
                    println!(
                        "  {mark} {:#x} {}  [{}]",
                        f.address,
                        f.short_future(),
                        f.scheduler
                    );
                }
            }
            Err(why) => println!("  no poll functions: {why}"),
        }
    }
}
