//! Thread roles, from what the threads' stacks run, whatever the threads are called.

use std::collections::HashMap;

use crate::frames::{BLOCKING_POOL, CURRENT_THREAD, WORKER};
use crate::model::{Model, Role};
use crate::symbolize::Symbols;

/// Sets every thread's role by majority over its samples' and off-CPU episodes' stacks.
pub fn classify(model: &mut Model, symbols: &Symbols) {
    let mut votes: HashMap<u32, [u32; 3]> = HashMap::new();
    let mut cache: HashMap<u32, Option<usize>> = HashMap::new();
    let stacks = model
        .samples
        .iter()
        .map(|s| (s.tid, s.stack))
        .chain(model.off_cpu.iter().map(|o| (o.tid, o.stack)))
        .collect::<Vec<_>>();
    for (tid, stack) in stacks {
        let vote = *cache.entry(stack).or_insert_with(|| {
            let frames = symbols.stack(model, stack);
            // Workers first: Tokio starts them on blocking-pool threads, so their stacks end in
            // the blocking pool's frames too.
            [WORKER, CURRENT_THREAD, BLOCKING_POOL]
                .iter()
                .position(|marker| frames.iter().any(|f| f.function.contains(marker)))
        });
        if let Some(i) = vote {
            votes.entry(tid).or_default()[i] += 1;
        }
    }
    for thread in model.threads.values_mut() {
        if let Some(v) = votes.get(&thread.tid) {
            let best = (0..3).max_by_key(|i| v[*i]).expect("three roles");
            thread.role = [Role::Worker, Role::CurrentThread, Role::BlockingPool][best];
            thread.role_from_stacks = true;
        }
    }
}
