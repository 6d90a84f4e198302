fn main() {
    for p in std::env::args().skip(1) {
        let b = std::fs::read(&p).unwrap();
        let t = std::time::Instant::now();
        let r = hud_format::elf::task_id::resolve(&b);
        println!("{p}: {:?} in {:?}", r, t.elapsed());
    }
}
