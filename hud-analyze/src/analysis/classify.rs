//! Thread roles, from what the threads' stacks run, whatever the threads are called.

use rustc_hash::FxHashMap as HashMap;

use crate::analysis::frames::{flags, Classifier};
use crate::model::{Model, Role};
use crate::symbols::Symbols;

/// Sets every thread's role by majority over its samples' and off-CPU episodes' stacks.
pub fn classify(model: &mut Model, symbols: &Symbols, cls: &Classifier) {
    let mut votes: HashMap<u32, [u32; 3]> = HashMap::default();
    // Per stack id: not seen yet (None), or the role its frames vote for.
    let mut cache = cls.stack_votes.borrow_mut();
    cache.resize(model.stacks.len() + 1, None);
    let stacks = model
        .samples
        .iter()
        .map(|s| (s.tid, s.stack))
        .chain(model.off_cpu.iter().map(|o| (o.tid, o.stack)));
    for (tid, stack) in stacks {
        let Some(slot) = cache.get_mut(stack as usize) else {
            continue;
        };
        let vote = *slot.get_or_insert_with(|| {
            let any = symbols
                .frames(model, stack)
                .fold(0, |acc, f| acc | cls.flags(f));
            // Workers first: Tokio starts them on blocking-pool threads, so their stacks end in
            // the blocking pool's frames too.
            [flags::WORKER, flags::CURRENT_THREAD, flags::BLOCKING_POOL]
                .iter()
                .position(|bit| any & bit != 0)
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
