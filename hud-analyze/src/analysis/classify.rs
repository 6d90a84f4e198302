//! Thread roles, from what the threads' stacks run, whatever the threads are called.

use rustc_hash::FxHashMap as HashMap;

use hud_format::wire::{NO_TICK, TICK_KIND_SHIFT, TICK_OF_CURRENT_THREAD, TICK_OF_MULTI_THREAD};

use crate::analysis::frames::{flags, Classifier};
use crate::model::{Model, Role};
use crate::symbols::Symbols;

/// Sets every thread's role by majority over its samples' and off-CPU episodes' stacks, and the
/// schedulers its samples' ticks were read from.
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
    // A sample whose scheduler tick was read (format 1.2) ran while its thread held a runtime's
    // core, and the tick says which scheduler: a vote that a stack cut short cannot lose.
    for s in &model.samples {
        if s.tick == NO_TICK {
            continue;
        }
        let vote = match s.tick >> TICK_KIND_SHIFT {
            TICK_OF_MULTI_THREAD => 0,
            TICK_OF_CURRENT_THREAD => 1,
            _ => continue,
        };
        votes.entry(s.tid).or_default()[vote] += 1;
    }
    for thread in model.threads.values_mut() {
        if let Some(v) = votes.get(&thread.tid) {
            let best = (0..3).max_by_key(|i| v[*i]).expect("three roles");
            thread.role = [Role::Worker, Role::CurrentThread, Role::BlockingPool][best];
            thread.role_from_stacks = true;
        }
    }
}
