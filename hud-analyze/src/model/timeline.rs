//! A thread's on/off-CPU history: every transition, compactly, queryable by time window.
//!
//! A context-switch storm records half a million transitions a second, so the layout is chosen
//! for size: transitions live in blocks of [`BLOCK`] with a 64-bit base time, each transition a
//! 32-bit offset from its block's base and a state byte (5 bytes per switch). Blocks are allocated
//! at their final size, so memory never doubles while a vector grows. Each block also carries the
//! time spent in each state before it (prefix totals), so the totals of any window cost two binary
//! searches and at most two partial block scans, never a scan of the whole thread.

use std::sync::Arc;

use hud_format::wire::STATE_PREEMPTED;

/// Transitions per block: small enough that a partial scan is cheap, large enough that the
/// per-block overhead (about 100 bytes) is under 0.1 byte per transition.
const BLOCK: usize = 1024;

/// What a thread was doing from one transition until the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum State {
    /// Before the thread's first known transition.
    Unknown = 0,
    OnCpu = 1,
    /// Preempted (switched out as runnable, "R+"): waiting for a CPU.
    Runnable = 2,
    /// Gave up the CPU to sleep (interruptible, "S"): a sleep, a lock, a park, a poll for I/O.
    Sleeping = 3,
    /// Uninterruptible ("D"): typically disk I/O.
    DiskWait = 4,
    /// Any other off-CPU state (stopped, traced, dead).
    OffCpu = 5,
}

impl State {
    const ALL: [State; 6] = [
        State::Unknown,
        State::OnCpu,
        State::Runnable,
        State::Sleeping,
        State::DiskWait,
        State::OffCpu,
    ];

    fn from_u8(v: u8) -> State {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(State::Unknown)
    }

    /// The state a switch record leaves the thread in: on CPU after a switch-in; after a
    /// switch-out, runnable when preempted, else what `prev_state` says.
    pub fn after_switch(on_cpu: bool, prev_state: u16) -> State {
        if on_cpu {
            State::OnCpu
        } else if u32::from(prev_state) & STATE_PREEMPTED != 0 || prev_state == 0 {
            // TASK_RUNNING (0) is what older kernels report for a preempted task.
            State::Runnable
        } else if prev_state & 2 != 0 {
            State::DiskWait
        } else if prev_state & 1 != 0 {
            State::Sleeping
        } else {
            State::OffCpu
        }
    }

    /// Off CPU by the thread's own doing (not preempted): the end of a poll, for detection.
    pub fn is_voluntary_off_cpu(self) -> bool {
        matches!(self, State::Sleeping | State::DiskWait | State::OffCpu)
    }
}

/// Time spent in each state, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub on_cpu: u64,
    /// Runnable after preemption, waiting for a CPU.
    pub runnable: u64,
    /// Off CPU by choice or for I/O (sleeping, disk wait, other).
    pub off_cpu: u64,
}

impl Totals {
    fn add(&mut self, state: State, ns: u64) {
        match state {
            State::OnCpu => self.on_cpu += ns,
            State::Runnable => self.runnable += ns,
            State::Sleeping | State::DiskWait | State::OffCpu => self.off_cpu += ns,
            State::Unknown => {}
        }
    }

    fn minus(self, earlier: Totals) -> Totals {
        Totals {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            runnable: self.runnable.saturating_sub(earlier.runnable),
            off_cpu: self.off_cpu.saturating_sub(earlier.off_cpu),
        }
    }
}

/// A stretch of time in one state, clipped to the queried window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub state: State,
}

#[derive(Clone)]
struct Block {
    base: u64,
    /// Nanoseconds since `base`, sorted.
    offsets: Vec<u32>,
    states: Vec<u8>,
    /// Time in each state from the timeline's start to `base` (valid up to `sealed_blocks`).
    before: Totals,
    /// The state in force at `base` (the previous block's last state).
    state_before: State,
}

impl Block {
    /// A block for `capacity` transitions (it grows past that if it must).
    fn new(base: u64, state_before: State, capacity: usize) -> Self {
        Block {
            base,
            offsets: Vec::with_capacity(capacity),
            states: Vec::with_capacity(capacity),
            before: Totals::default(),
            state_before,
        }
    }

    fn time(&self, i: usize) -> u64 {
        self.base + u64::from(self.offsets[i])
    }

    fn state(&self, i: usize) -> State {
        State::from_u8(self.states[i])
    }

    fn last_time(&self) -> u64 {
        self.offsets
            .last()
            .map_or(self.base, |o| self.base + u64::from(*o))
    }

    fn last_state(&self) -> State {
        self.states
            .last()
            .map_or(self.state_before, |s| State::from_u8(*s))
    }

    /// Index of the first transition at or after `t`.
    fn lower_bound(&self, t: u64) -> usize {
        let rel = t.saturating_sub(self.base).min(u64::from(u32::MAX)) as u32;
        if t < self.base {
            return 0;
        }
        self.offsets.partition_point(|o| *o < rel)
    }
}

/// One thread's transitions, in time order. Blocks are shared between clones (a live view
/// publishes a copy of the model twice a second): a clone costs a pointer per block, and only a
/// block written after the copy is copied.
#[derive(Clone)]
pub struct Timeline {
    /// When the history starts (the recording's start): the state before the first transition
    /// is known from it (see [`Timeline::seal`]).
    start: u64,
    /// Sealed until here: `end` of the last seal; totals after it are not in the prefixes.
    end: u64,
    blocks: Vec<Arc<Block>>,
    /// Transitions before this time were forgotten ([`Timeline::forget_before`]): the first
    /// block's prefix totals are then kept as they are.
    forgotten: bool,
    /// Blocks from this index on need their prefix totals recomputed.
    dirty_from: usize,
    len: usize,
}

impl Timeline {
    pub fn new(start: u64) -> Self {
        Timeline {
            start,
            end: start,
            blocks: Vec::new(),
            forgotten: false,
            dirty_from: 0,
            len: 0,
        }
    }

    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the history starts (later than the recording's start once a part was forgotten).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Where the sealed history ends.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends a transition at `t` into `state`. Transitions should come in time order; one that
    /// comes late is inserted in its place. (The ring buffer interleaves CPUs, but one thread's
    /// records come in order in practice: 0 late rows in 15.7 M switches of a storm capture.)
    pub fn push(&mut self, t: u64, state: State) {
        self.len += 1;
        // A full block is followed by a full one (a busy thread); a block cut by a long gap may
        // be followed by few transitions (and a crafted capture could make one per transition):
        // it grows as needed.
        let (needs_block, capacity) = match self.blocks.last() {
            // Most threads switch a few times (and a crafted capture may name thousands).
            None => (true, 16),
            Some(b) if b.offsets.len() >= BLOCK => (true, BLOCK),
            Some(b) => (t.saturating_sub(b.base) > u64::from(u32::MAX), 16),
        };
        match self.blocks.last() {
            Some(b) if t < b.last_time() => return self.insert_late(t, state),
            _ => {}
        }
        if needs_block {
            let before = self
                .blocks
                .last()
                .map_or(State::Unknown, |b| b.last_state());
            self.blocks.push(Arc::new(Block::new(t, before, capacity)));
        }
        let b = Arc::make_mut(self.blocks.last_mut().expect("a block"));
        b.offsets.push((t - b.base) as u32);
        b.states.push(state as u8);
    }

    /// Inserts a transition that arrived after later ones (rare: a few per chunk boundary).
    fn insert_late(&mut self, t: u64, state: State) {
        // The last block whose base is at or before `t` (or the first block, clamped).
        let bi = self
            .blocks
            .partition_point(|b| b.base <= t)
            .saturating_sub(1);
        let base = self.blocks[bi].base;
        let t = t.max(base);
        if t - base > u64::from(u32::MAX) {
            // Past what this block's offsets can say, and so after all of its transitions (and
            // before the next block's): a block of its own, in its place.
            let before = self.blocks[bi].last_state();
            let mut block = Block::new(t, before, 1);
            block.offsets.push(0);
            block.states.push(state as u8);
            self.blocks.insert(bi + 1, Arc::new(block));
        } else {
            let b = Arc::make_mut(&mut self.blocks[bi]);
            let i = b.lower_bound(t.saturating_add(1));
            b.offsets.insert(i, (t - b.base) as u32);
            b.states.insert(i, state as u8);
        }
        for next in bi + 1..self.blocks.len() {
            let prev_state = self.blocks[next - 1].last_state();
            Arc::make_mut(&mut self.blocks[next]).state_before = prev_state;
        }
        self.dirty_from = self.dirty_from.min(bi);
    }

    /// The state before the first transition: on CPU since the start when the first transition
    /// leaves the CPU, unknown otherwise.
    fn initial_state(&self) -> State {
        match self.blocks.first().and_then(|b| b.states.first()) {
            Some(s) if State::from_u8(*s) != State::OnCpu => State::OnCpu,
            _ => State::Unknown,
        }
    }

    /// Recomputes the prefix totals of blocks changed since the last seal, and sets the end of
    /// the history to `end` (the last state lasts until then). Cost: the transitions pushed since.
    pub fn seal(&mut self, end: u64) {
        self.end = end.max(self.start);
        let initial = self.initial_state();
        // After forgetting, the first block's totals stand for what was forgotten.
        if !self.forgotten {
            if let Some(first) = self.blocks.first_mut() {
                if first.state_before != initial {
                    Arc::make_mut(first).state_before = initial;
                }
            }
        }
        let from = self
            .dirty_from
            .max(usize::from(self.forgotten))
            .min(self.blocks.len());
        for bi in from..self.blocks.len() {
            let (before, state_before) = if bi == 0 {
                (Totals::default(), initial)
            } else {
                let prev = &self.blocks[bi - 1];
                let mut t = prev.before;
                let mut at = prev.base;
                let mut state = prev.state_before;
                if bi - 1 == 0 {
                    t.add(state, prev.base.saturating_sub(self.start));
                }
                for i in 0..prev.offsets.len() {
                    let time = prev.time(i);
                    t.add(state, time.saturating_sub(at));
                    at = time;
                    state = prev.state(i);
                }
                t.add(state, self.blocks[bi].base.saturating_sub(at));
                (t, state)
            };
            let b = &mut self.blocks[bi];
            if b.before != before || b.state_before != state_before {
                let b = Arc::make_mut(b);
                b.before = before;
                b.state_before = state_before;
            }
        }
        self.dirty_from = self.blocks.len().saturating_sub(1);
    }

    /// Time in each state within `[from, to)` (clipped to the sealed history).
    pub fn totals(&self, from: u64, to: u64) -> Totals {
        let to = to.min(self.end);
        let from = from.max(self.start);
        if from >= to {
            return Totals::default();
        }
        self.totals_until(to).minus(self.totals_until(from))
    }

    /// The totals of each span between consecutive `edges` (increasing): one pass over the
    /// transitions from the first edge to the last, where a [`Timeline::totals`] per span would
    /// search and partly scan a block for each (a timeline lane has one span per column).
    pub fn totals_between(&self, edges: &[u64]) -> Vec<Totals> {
        let clamp = |t: u64| t.clamp(self.start, self.end.max(self.start));
        let Some(&first) = edges.first() else {
            return Vec::new();
        };
        let first = clamp(first);
        let last = clamp(*edges.last().unwrap_or(&first));
        let mut running = self.totals_until(first);
        let mut state = self.state_at(first);
        let mut at = first;
        let mut transitions = self
            .transitions(first.saturating_add(1), last.saturating_add(1))
            .peekable();
        let mut out = Vec::with_capacity(edges.len().saturating_sub(1));
        let mut previous = running;
        for &edge in &edges[1..] {
            let edge = clamp(edge).max(at);
            while let Some(&(t, s)) = transitions.peek() {
                if t > edge {
                    break;
                }
                running.add(state, t - at);
                at = t;
                state = s;
                transitions.next();
            }
            running.add(state, edge - at);
            at = edge;
            out.push(running.minus(previous));
            previous = running;
        }
        out
    }

    /// Time in each state from the history's start until `t`.
    fn totals_until(&self, t: u64) -> Totals {
        let mut totals = Totals::default();
        let bi = self.blocks.partition_point(|b| b.base <= t);
        if bi == 0 {
            // Before the first transition.
            let state = self.initial_state();
            totals.add(state, t.saturating_sub(self.start));
            return totals;
        }
        let b = &self.blocks[bi - 1];
        totals = b.before;
        if bi - 1 == 0 {
            totals.add(b.state_before, b.base.saturating_sub(self.start));
        }
        let mut at = b.base;
        let mut state = b.state_before;
        for i in 0..b.offsets.len() {
            let time = b.time(i);
            if time > t {
                break;
            }
            totals.add(state, time - at);
            at = time;
            state = b.state(i);
        }
        totals.add(state, t - at);
        totals
    }

    /// The state at time `t`.
    pub fn state_at(&self, t: u64) -> State {
        let bi = self.blocks.partition_point(|b| b.base <= t);
        if bi == 0 {
            return if t >= self.start {
                self.initial_state()
            } else {
                State::Unknown
            };
        }
        let b = &self.blocks[bi - 1];
        match b.lower_bound(t + 1) {
            0 => b.state_before,
            i => b.state(i - 1),
        }
    }

    /// Transitions with their times in `[from, to)`, in order.
    pub fn transitions(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, State)> + '_ {
        let bi = self
            .blocks
            .partition_point(|b| b.base <= from)
            .saturating_sub(1);
        let first = self.blocks.get(bi).map_or(0, |b| b.lower_bound(from));
        self.blocks[bi.min(self.blocks.len())..]
            .iter()
            .enumerate()
            .flat_map(move |(k, b)| {
                let start = if k == 0 { first } else { 0 };
                (start..b.offsets.len()).map(move |i| (b.time(i), b.state(i)))
            })
            .skip_while(move |(t, _)| *t < from)
            .take_while(move |(t, _)| *t < to)
    }

    /// Whether the thread left the CPU by its own doing strictly between `from` and `to`.
    pub fn voluntary_switch_out_between(&self, from: u64, to: u64) -> bool {
        self.transitions(from.saturating_add(1), to)
            .any(|(_, s)| s.is_voluntary_off_cpu())
    }

    /// The spans of `[from, to)`, clipped to the window and to the sealed history; a state that
    /// repeats (two switch-outs in a row after a lost record) continues one span.
    pub fn spans(&self, from: u64, to: u64) -> impl Iterator<Item = Span> + '_ {
        let from = from.max(self.start);
        let to = to.min(self.end);
        let mut current = (from, self.state_at(from));
        let mut transitions = self.transitions(from.saturating_add(1), to);
        let mut done = from >= to;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            loop {
                match transitions.next() {
                    Some((_, s)) if s == current.1 => {}
                    Some((t, s)) => {
                        let span = Span {
                            start: current.0,
                            end: t,
                            state: current.1,
                        };
                        current = (t, s);
                        if span.end > span.start {
                            return Some(span);
                        }
                    }
                    None => {
                        done = true;
                        return (to > current.0).then_some(Span {
                            start: current.0,
                            end: to,
                            state: current.1,
                        });
                    }
                }
            }
        })
    }

    /// Forgets the blocks that end before `t`, keeping the one in force at `t`, and moves the
    /// history's start to `t`: queries from `t` on give the same answers as before. A live view
    /// keeps a window of detail this way. Returns the transitions forgotten.
    pub fn forget_before(&mut self, t: u64) -> usize {
        // Blocks whose successor starts at or before `t` are not needed for any time >= t.
        let keep_from = self
            .blocks
            .partition_point(|b| b.base <= t)
            .saturating_sub(1);
        if keep_from > 0 {
            // Their totals must be in the kept block's prefix first.
            self.seal(self.end.max(t));
        }
        let forgotten: usize = self.blocks[..keep_from]
            .iter()
            .map(|b| b.offsets.len())
            .sum();
        self.blocks.drain(..keep_from);
        self.len -= forgotten;
        self.dirty_from = self.dirty_from.saturating_sub(keep_from);
        if keep_from > 0 {
            self.forgotten = true;
        }
        self.start = self.start.max(t);
        self.end = self.end.max(self.start);
        forgotten
    }

    /// Bytes held (for the memory budget).
    pub fn heap_bytes(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.offsets.capacity() * 4 + b.states.capacity() + std::mem::size_of::<Block>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(rows: &[(u64, State)], start: u64, end: u64) -> Timeline {
        let mut t = Timeline::new(start);
        for &(ts, s) in rows {
            t.push(ts, s);
        }
        t.seal(end);
        t
    }

    /// Totals by walking every transition: the reference for the prefix sums.
    fn naive(rows: &[(u64, State)], start: u64, end: u64, from: u64, to: u64) -> Totals {
        let mut sorted = rows.to_vec();
        sorted.sort_by_key(|r| r.0);
        let initial = match sorted.first() {
            Some((_, s)) if *s != State::OnCpu => State::OnCpu,
            _ => State::Unknown,
        };
        let mut totals = Totals::default();
        let mut at = start;
        let mut state = initial;
        let clip = |a: u64, b: u64| b.min(to).min(end).saturating_sub(a.max(from));
        for (t, s) in sorted {
            totals.add(state, clip(at, t));
            at = t;
            state = s;
        }
        totals.add(state, clip(at, end));
        totals
    }

    #[test]
    fn switch_records_map_to_states() {
        assert_eq!(State::after_switch(true, 1), State::OnCpu);
        assert_eq!(State::after_switch(false, 0x100), State::Runnable);
        assert_eq!(State::after_switch(false, 0), State::Runnable);
        assert_eq!(State::after_switch(false, 1), State::Sleeping);
        assert_eq!(State::after_switch(false, 2), State::DiskWait);
        assert_eq!(State::after_switch(false, 0x80), State::OffCpu);
    }

    #[test]
    fn a_thread_that_first_leaves_the_cpu_was_on_it_since_the_start() {
        let t = timeline(
            &[
                (150, State::Sleeping),
                (200, State::OnCpu),
                (260, State::Runnable),
                (300, State::OnCpu),
            ],
            100,
            400,
        );
        assert_eq!(
            t.totals(0, u64::MAX),
            Totals {
                on_cpu: 50 + 60 + 100,
                runnable: 40,
                off_cpu: 50
            }
        );
        assert_eq!(t.state_at(120), State::OnCpu);
        assert_eq!(t.state_at(150), State::Sleeping);
        assert_eq!(t.state_at(270), State::Runnable);
        let spans: Vec<Span> = t.spans(140, 280).collect();
        assert_eq!(
            spans,
            vec![
                Span {
                    start: 140,
                    end: 150,
                    state: State::OnCpu
                },
                Span {
                    start: 150,
                    end: 200,
                    state: State::Sleeping
                },
                Span {
                    start: 200,
                    end: 260,
                    state: State::OnCpu
                },
                Span {
                    start: 260,
                    end: 280,
                    state: State::Runnable
                },
            ]
        );
    }

    #[test]
    fn window_totals_equal_a_full_walk_across_many_blocks_and_late_rows() {
        let mut rng = hud_format::synth::Rng::new(7);
        let mut rows = Vec::new();
        let mut ts = 1_000u64;
        for i in 0..5_000 {
            // Gaps up to 5 s, so some blocks end early on the 32-bit offset.
            ts += 1 + rng.below(if i % 997 == 0 { 5_000_000_000 } else { 50_000 });
            let state = State::ALL[1 + rng.below(5) as usize];
            rows.push((ts, state));
        }
        // A few rows out of order, as the ring buffer delivers them across CPUs.
        for i in (50..rows.len()).step_by(401) {
            rows.swap(i, i - 1);
        }
        let end = ts + 10;
        let t = timeline(&rows, 500, end);
        assert_eq!(t.len(), rows.len());
        for _ in 0..200 {
            let a = 500 + rng.below(end - 400);
            let b = a + rng.below(end - a + 100);
            assert_eq!(t.totals(a, b), naive(&rows, 500, end, a, b), "[{a}, {b})");
        }
        assert_eq!(t.totals(0, u64::MAX), naive(&rows, 500, end, 0, u64::MAX));
        // Spans cover the window exactly and agree with the totals.
        let (a, b) = (end / 3, end / 2);
        let mut on = 0;
        let mut at = a;
        for s in t.spans(a, b) {
            assert_eq!(s.start, at);
            at = s.end;
            if s.state == State::OnCpu {
                on += s.end - s.start;
            }
        }
        assert_eq!(at, b);
        assert_eq!(on, t.totals(a, b).on_cpu);
    }

    #[test]
    fn voluntary_switch_outs_between_two_samples() {
        let t = timeline(
            &[
                (10, State::Runnable),
                (20, State::OnCpu),
                (30, State::Sleeping),
                (40, State::OnCpu),
            ],
            0,
            100,
        );
        assert!(
            !t.voluntary_switch_out_between(5, 25),
            "preemption is not a park"
        );
        assert!(t.voluntary_switch_out_between(25, 35));
        assert!(!t.voluntary_switch_out_between(30, 35), "exclusive bounds");
    }

    #[test]
    fn five_bytes_a_transition() {
        let rows: Vec<(u64, State)> = (0..100_000u64)
            .map(|i| (i * 1_000, State::ALL[1 + (i % 3) as usize]))
            .collect();
        let t = timeline(&rows, 0, 100_000_000);
        let per = t.heap_bytes() as f64 / rows.len() as f64;
        assert!(per < 5.2, "{per} bytes per transition");
    }

    #[test]
    fn totals_between_edges_equal_totals_of_each_span() {
        let states = [State::OnCpu, State::Sleeping, State::Runnable, State::OnCpu];
        let rows: Vec<(u64, State)> = (0..3000u64)
            .map(|i| (500 + i * 997 + (i % 7) * 13, states[i as usize % 4]))
            .collect();
        let t = timeline(&rows, 100, 3_100_000);
        for edges in [
            (0..=180u64)
                .map(|c| c * 3_200_000 / 180)
                .collect::<Vec<_>>(),
            vec![0, 50, 100, 101, 2_000_000, 2_000_000, 5_000_000],
            vec![1_000_000, 1_000_500],
        ] {
            let expected: Vec<Totals> = edges.windows(2).map(|w| t.totals(w[0], w[1])).collect();
            assert_eq!(t.totals_between(&edges), expected, "{edges:?}");
        }
    }

    #[test]
    fn forgetting_old_blocks_keeps_every_answer_after_the_cut() {
        // 5000 transitions, 1 µs apart: about five blocks.
        let states = [State::OnCpu, State::Sleeping, State::OnCpu, State::Runnable];
        let rows: Vec<(u64, State)> = (0..5000u64)
            .map(|i| (1_000 + i * 1_000, states[i as usize % 4]))
            .collect();
        let end = 6_000_000;
        let whole = timeline(&rows, 0, end);
        let mut kept = timeline(&rows, 0, end);
        // A clone taken before shares the blocks and must not change.
        let before = kept.clone();
        let cut = 2_500_500;
        let forgotten = kept.forget_before(cut);
        assert!(forgotten >= 2048, "{forgotten}");
        assert_eq!(kept.len(), 5000 - forgotten);
        for (from, to) in [(cut, end), (cut, 3_000_000), (4_000_123, 5_555_555)] {
            assert_eq!(
                kept.totals(from, to),
                whole.totals(from, to),
                "{from}..{to}"
            );
            assert_eq!(
                kept.spans(from, to).collect::<Vec<_>>(),
                whole.spans(from, to).collect::<Vec<_>>()
            );
        }
        assert_eq!(kept.state_at(cut), whole.state_at(cut));
        assert_eq!(before.totals(0, end), whole.totals(0, end));
        // New transitions after forgetting land and seal as usual.
        kept.push(end + 10, State::Sleeping);
        kept.seal(end + 1_000);
        let mut grown = timeline(&rows, 0, end);
        grown.push(end + 10, State::Sleeping);
        grown.seal(end + 1_000);
        assert_eq!(
            kept.totals(cut, end + 1_000),
            grown.totals(cut, end + 1_000)
        );
    }
}
