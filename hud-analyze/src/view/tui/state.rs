//! The cockpit's state and what keys do to it: no terminal, no drawing, so every key sequence is
//! a unit test. `update` returns what the loop must do beyond redrawing (quit, ask the analysis
//! for another window, copy the drilldown).

use super::flame::{FlameTree, Scope};
use crate::analysis::profile::Weight;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::analysis::Window;

/// The panels that take the focus, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Blockers,
    Hotspots,
    Workers,
    Timeline,
}

impl Panel {
    const ORDER: [Panel; 4] = [
        Panel::Blockers,
        Panel::Hotspots,
        Panel::Workers,
        Panel::Timeline,
    ];

    fn index(self) -> usize {
        Self::ORDER.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn next(self) -> Panel {
        Self::ORDER[(self.index() + 1) % Self::ORDER.len()]
    }

    fn prev(self) -> Panel {
        Self::ORDER[(self.index() + Self::ORDER.len() - 1) % Self::ORDER.len()]
    }
}

/// What covers the panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// The drilldown of the blocker with this group id, scrolled by `scroll` lines.
    Drilldown {
        group: u32,
        scroll: u16,
    },
    /// What the task with this id did in the window, scrolled by `scroll` lines.
    Task {
        id: u64,
        scroll: u16,
    },
    /// The flame graph of `scope`'s stacks by `weight`, zoomed into node `zoom`, frame `selected`
    /// selected (node ids of the tree on screen; out of range after a new snapshot: the root).
    Flame {
        scope: Scope,
        weight: Weight,
        zoom: u32,
        selected: u32,
    },
}

/// What the hotspots panel lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// CPU hotspots, by function or by line (`f`).
    Hotspots,
    /// Poll durations per future type (`p`, `--poll-probes` captures).
    Polls,
    /// The Tokio tasks seen (`t`, captures with task ids), in [`TaskOrder`].
    Tasks,
}

/// The order of the tasks list (`s` goes to the next).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOrder {
    /// Most time on CPU first.
    Cpu,
    /// Most time blocking its thread first.
    Blocked,
    /// Most long polls first.
    LongPolls,
}

impl TaskOrder {
    fn next(self) -> TaskOrder {
        match self {
            TaskOrder::Cpu => TaskOrder::Blocked,
            TaskOrder::Blocked => TaskOrder::LongPolls,
            TaskOrder::LongPolls => TaskOrder::Cpu,
        }
    }

    /// As the list's title says it.
    pub fn label(self) -> &'static str {
        match self {
            TaskOrder::Cpu => "on CPU",
            TaskOrder::Blocked => "blocked",
            TaskOrder::LongPolls => "long polls",
        }
    }
}

/// What the loop must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Just redraw.
    None,
    Quit,
    /// The selected window changed: the panels need the findings of this window.
    Window(Window),
    /// Write the open drilldown somewhere the user can paste it from.
    Copy {
        group: u32,
    },
    /// Live: show the whole session's totals (true) or the window of detail (false).
    Accumulated(bool),
}

/// How many rows each list shows now (after the filter), so selections stay in range, and which
/// blocker (group id) each row of the blockers list is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    /// The flame graph on screen, when the overlay shows one (its keys walk the tree).
    pub flame: Option<std::sync::Arc<FlameTree>>,
    pub blockers: Vec<u32>,
    /// Rows of the hotspots panel, whatever it lists.
    pub hotspots: usize,
    /// The task ids of the tasks list, when the hotspots panel shows it.
    pub tasks: Vec<u64>,
    pub workers: Vec<u32>,
}

/// Timeline moves are in steps of this fraction of the visible span.
const CURSOR_STEPS: u64 = 100;
/// Zooming never shows less than this (nanoseconds).
const MIN_SPAN: u64 = 1_000_000;

/// Everything the user changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub focus: Panel,
    /// Selected row of each list panel (index by [`Panel::index`]; the timeline's is unused).
    pub selected: [usize; 4],
    /// Hotspots by file:line instead of by function.
    pub by_line: bool,
    /// What the hotspots panel lists.
    pub listing: Listing,
    /// The order of the tasks list.
    pub task_order: TaskOrder,
    /// Hotspots of this worker only (pinned with Enter in the workers panel).
    pub pinned_worker: Option<u32>,
    /// The recording's span.
    pub bounds: (u64, u64),
    /// The timeline's visible span.
    pub view: (u64, u64),
    /// The time under the timeline's cursor.
    pub cursor: u64,
    /// The window every panel shows; `Window::ALL` when none is selected.
    pub window: Window,
    /// Lower-case text rows must contain (function or file).
    pub filter: String,
    /// Typing the filter.
    pub editing: bool,
    pub overlay: Overlay,
    /// A one-line message for the user (what a copy wrote, …).
    pub note: Option<String>,
    /// Live: the screen keeps its snapshot (the recording goes on).
    pub paused: bool,
    /// Live: panels show the whole session's totals instead of the window of detail.
    pub accumulated: bool,
    /// A flight recorder's dump: the moment it was written around (its trigger), marked on the
    /// timeline.
    pub trigger: Option<u64>,
}

impl State {
    /// A state over `model`'s recording; a flight recorder's dump opens with the timeline's
    /// cursor at its trigger, marked, and a line that says why it was written.
    pub fn for_model(model: &crate::model::Model) -> Self {
        let mut state = State::new(model.start, model.end);
        let dump = model
            .provenance
            .as_ref()
            .and_then(|p| p.dump.as_ref())
            .filter(|d| d.reason != "segment");
        if let Some(d) = dump {
            let at = d.trigger_ns.clamp(state.bounds.0, state.bounds.1);
            state.trigger = Some(at);
            state.cursor = at;
            state.note = Some(format!(
                "flight-recorder dump ({}) around {:.2} s, marked ▼ on the timeline{}",
                d.reason,
                // As the timeline counts: from the capture's start.
                at.saturating_sub(model.header.start_ns) as f64 / 1e9,
                if d.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.detail)
                }
            ));
        }
        state
    }

    /// A state over a recording spanning `[start, end]`.
    pub fn new(start: u64, end: u64) -> Self {
        let end = end.max(start + 1);
        State {
            focus: Panel::Blockers,
            selected: [0; 4],
            by_line: false,
            listing: Listing::Hotspots,
            task_order: TaskOrder::Cpu,
            pinned_worker: None,
            bounds: (start, end),
            view: (start, end),
            cursor: start,
            window: Window::ALL,
            filter: String::new(),
            editing: false,
            overlay: Overlay::None,
            note: None,
            paused: false,
            accumulated: false,
            trigger: None,
        }
    }

    /// The recording grew (or its oldest detail was forgotten): new bounds `[start, end]`. A
    /// timeline showing everything keeps showing everything, a cursor at the end stays at the
    /// end, and what was forgotten leaves the view and the window.
    pub fn rebound(&mut self, start: u64, end: u64) {
        let end = end.max(start + 1);
        let old_end = self.bounds.1;
        let showing_all = self.view == self.bounds;
        let at_end = self.cursor >= old_end;
        self.bounds = (start, end);
        if showing_all {
            self.view = self.bounds;
        } else {
            // The same span, moved inside the new bounds.
            let span = (self.view.1 - self.view.0).min(end - start);
            let from = self.view.0.clamp(start, end - span);
            self.view = (from, from + span);
        }
        self.cursor = if at_end {
            end
        } else {
            self.cursor.clamp(start, end)
        };
        if self.window != Window::ALL && self.window.to <= start {
            self.window = Window::ALL;
        }
    }

    /// Whether `text` (a function or a file) passes the filter.
    pub fn matches(&self, texts: &[&str]) -> bool {
        self.filter.is_empty()
            || texts
                .iter()
                .any(|t| t.to_lowercase().contains(&self.filter))
    }

    /// The selected row of a panel.
    pub fn row(&self, panel: Panel) -> usize {
        self.selected[panel.index()]
    }

    /// The window as a time range, clipped to the recording.
    pub fn window_range(&self) -> Option<(u64, u64)> {
        (self.window != Window::ALL).then(|| {
            (
                self.window.from.max(self.bounds.0),
                self.window.to.min(self.bounds.1),
            )
        })
    }

    /// Applies a key; `rows` are the lists as drawn now.
    pub fn update(&mut self, key: KeyEvent, rows: &Rows) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return Action::Quit;
        }
        self.note = None;
        if self.editing {
            self.edit_filter(key);
            self.clamp(rows);
            return Action::None;
        }
        match self.overlay {
            Overlay::Help => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
                ) {
                    self.overlay = Overlay::None;
                }
                return Action::None;
            }
            Overlay::Flame { .. } => return self.flame_key(key, rows),
            Overlay::Drilldown { .. } | Overlay::Task { .. } => {
                return match key.code {
                    KeyCode::Esc | KeyCode::Enter => {
                        self.overlay = Overlay::None;
                        Action::None
                    }
                    KeyCode::Char('q') => Action::Quit,
                    KeyCode::Char('F') => match self.overlay {
                        Overlay::Drilldown { group, .. } => {
                            self.overlay = Overlay::Flame {
                                scope: Scope::Blocker(group),
                                weight: Weight::Blocked,
                                zoom: 0,
                                selected: 0,
                            };
                            Action::None
                        }
                        _ => Action::None,
                    },
                    KeyCode::Char('y') => match self.overlay {
                        Overlay::Drilldown { group, .. } => Action::Copy { group },
                        _ => Action::None,
                    },
                    KeyCode::Down | KeyCode::Char('j') => self.scroll_overlay(1),
                    KeyCode::Up | KeyCode::Char('k') => self.scroll_overlay(-1),
                    KeyCode::PageDown => self.scroll_overlay(10),
                    KeyCode::PageUp => self.scroll_overlay(-10),
                    _ => Action::None,
                };
            }
            Overlay::None => {}
        }
        let shift = key.modifiers.contains(KeyModifiers::SHIFT);
        let action = match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char(' ') => {
                self.paused = !self.paused;
                Action::None
            }
            KeyCode::Char('a') => {
                self.accumulated = !self.accumulated;
                Action::Accumulated(self.accumulated)
            }
            KeyCode::Char('?') => {
                self.overlay = Overlay::Help;
                Action::None
            }
            KeyCode::Tab => {
                self.focus = self.focus.next();
                Action::None
            }
            KeyCode::BackTab => {
                self.focus = self.focus.prev();
                Action::None
            }
            KeyCode::Char('/') => {
                self.editing = true;
                self.filter.clear();
                Action::None
            }
            KeyCode::Char('f') => {
                // From another listing, back to the hotspots as they were.
                if self.listing == Listing::Hotspots {
                    self.by_line = !self.by_line;
                }
                self.list(Listing::Hotspots)
            }
            KeyCode::Char('p') => self.list(Listing::Polls),
            KeyCode::Char('F') => {
                self.overlay = Overlay::Flame {
                    scope: self.pinned_worker.map_or(Scope::All, Scope::Thread),
                    weight: Weight::Cpu,
                    zoom: 0,
                    selected: 0,
                };
                Action::None
            }
            KeyCode::Char('t') => self.list(Listing::Tasks),
            KeyCode::Char('s') if self.listing == Listing::Tasks => {
                self.task_order = self.task_order.next();
                self.selected[Panel::Hotspots.index()] = 0;
                Action::None
            }
            KeyCode::Char('n') => self.move_selection(1, rows),
            KeyCode::Char('N') => self.move_selection(-1, rows),
            KeyCode::Char('+') => self.zoom(true),
            KeyCode::Char('-') => self.zoom(false),
            KeyCode::Char('=') => {
                self.view = self.bounds;
                Action::None
            }
            KeyCode::Char('[') => self.set_window(Some(self.cursor), None),
            KeyCode::Char(']') => self.set_window(None, Some(self.cursor)),
            KeyCode::Esc => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                    Action::None
                } else if self.window != Window::ALL {
                    self.window = Window::ALL;
                    Action::Window(Window::ALL)
                } else if self.pinned_worker.is_some() {
                    self.pinned_worker = None;
                    Action::None
                } else {
                    Action::None
                }
            }
            KeyCode::Enter => self.enter(rows),
            KeyCode::Left | KeyCode::Char('h') if self.focus == Panel::Timeline => {
                self.move_cursor(false, shift)
            }
            KeyCode::Right | KeyCode::Char('l') if self.focus == Panel::Timeline => {
                self.move_cursor(true, shift)
            }
            KeyCode::Char('H') if self.focus == Panel::Timeline => self.move_cursor(false, true),
            KeyCode::Char('L') if self.focus == Panel::Timeline => self.move_cursor(true, true),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1, rows),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1, rows),
            KeyCode::PageDown => self.move_selection(10, rows),
            KeyCode::PageUp => self.move_selection(-10, rows),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(-(1 << 20), rows),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(1 << 20, rows),
            _ => Action::None,
        };
        self.clamp(rows);
        action
    }

    fn edit_filter(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.editing = false,
            KeyCode::Esc => {
                self.editing = false;
                self.filter.clear();
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.extend(c.to_lowercase()),
            _ => {}
        }
        self.selected = [0; 4];
    }

    fn enter(&mut self, rows: &Rows) -> Action {
        match self.focus {
            Panel::Blockers => {
                if let Some(&group) = rows.blockers.get(self.row(Panel::Blockers)) {
                    self.overlay = Overlay::Drilldown { group, scroll: 0 };
                }
            }
            Panel::Workers => {
                let tid = rows.workers.get(self.row(Panel::Workers)).copied();
                self.pinned_worker = if self.pinned_worker == tid { None } else { tid };
                self.selected[Panel::Hotspots.index()] = 0;
            }
            Panel::Hotspots if self.listing == Listing::Tasks => {
                if let Some(&id) = rows.tasks.get(self.row(Panel::Hotspots)) {
                    self.overlay = Overlay::Task { id, scroll: 0 };
                }
            }
            Panel::Hotspots | Panel::Timeline => {}
        }
        Action::None
    }

    /// `listing` in the hotspots panel; asked for again, back to the hotspots.
    fn list(&mut self, listing: Listing) -> Action {
        self.listing = if self.listing == listing && listing != Listing::Hotspots {
            Listing::Hotspots
        } else {
            listing
        };
        self.selected[Panel::Hotspots.index()] = 0;
        Action::None
    }

    /// Keys of the flame graph: arrows walk the tree (↑ caller, ↓ heaviest callee, ←→
    /// siblings), Enter zooms into the selected frame, Backspace zooms out, `c` weighs CPU or
    /// time blocked, `w` steps through the runtime threads, `/` searches, Esc clears the search,
    /// then zooms out, then closes.
    fn flame_key(&mut self, key: KeyEvent, rows: &Rows) -> Action {
        let Overlay::Flame {
            mut scope,
            mut weight,
            zoom,
            selected,
        } = self.overlay
        else {
            return Action::None;
        };
        let tree = rows.flame.as_deref();
        let len = tree.map_or(1, |t| t.nodes.len() as u32);
        // A new snapshot's tree: ids from the old one mean nothing.
        let (mut zoom, mut selected) = if zoom < len && selected < len {
            (zoom, selected)
        } else {
            (0, 0)
        };
        let parent = |i: u32| tree.map_or(0, |t| t.nodes[i as usize].parent);
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => {
                self.overlay = Overlay::Help;
                return Action::None;
            }
            KeyCode::Char('/') => {
                self.editing = true;
                self.filter.clear();
            }
            KeyCode::Up | KeyCode::Char('k') if selected != zoom => {
                selected = parent(selected);
            }
            KeyCode::Down | KeyCode::Char('j') => {
                if let Some(c) = tree.and_then(|t| t.heaviest_child(selected)) {
                    selected = c;
                }
            }
            KeyCode::Left | KeyCode::Char('h') | KeyCode::Right | KeyCode::Char('l') => {
                let by = if matches!(key.code, KeyCode::Left | KeyCode::Char('h')) {
                    -1
                } else {
                    1
                };
                if selected != zoom {
                    if let Some(s) = tree.and_then(|t| t.sibling(selected, by)) {
                        selected = s;
                    }
                }
            }
            KeyCode::Enter => zoom = selected,
            KeyCode::Backspace => {
                zoom = parent(zoom);
            }
            KeyCode::Char('c') if !matches!(scope, Scope::Blocker(_)) => {
                weight = if weight == Weight::Cpu {
                    Weight::Blocked
                } else {
                    Weight::Cpu
                };
                (zoom, selected) = (0, 0);
            }
            KeyCode::Char('w') if !matches!(scope, Scope::Blocker(_)) => {
                let threads = &rows.workers;
                scope = match scope {
                    Scope::All => threads.first().map_or(Scope::All, |t| Scope::Thread(*t)),
                    Scope::Thread(t) => threads
                        .iter()
                        .position(|x| *x == t)
                        .and_then(|i| threads.get(i + 1))
                        .map_or(Scope::All, |t| Scope::Thread(*t)),
                    other => other,
                };
                (zoom, selected) = (0, 0);
            }
            KeyCode::Esc => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                } else if zoom != 0 {
                    zoom = parent(zoom);
                } else {
                    self.overlay = Overlay::None;
                    return Action::None;
                }
            }
            _ => {}
        }
        if !tree.is_some_and(|t| t.is_under(selected, zoom)) {
            selected = zoom;
        }
        self.overlay = Overlay::Flame {
            scope,
            weight,
            zoom,
            selected,
        };
        Action::None
    }

    fn scroll_overlay(&mut self, by: i32) -> Action {
        let moved = |scroll: u16| scroll.saturating_add_signed(by.clamp(-100, 100) as i16);
        self.overlay = match self.overlay {
            Overlay::Drilldown { group, scroll } => Overlay::Drilldown {
                group,
                scroll: moved(scroll),
            },
            Overlay::Task { id, scroll } => Overlay::Task {
                id,
                scroll: moved(scroll),
            },
            other => other,
        };
        Action::None
    }

    fn move_selection(&mut self, by: i64, rows: &Rows) -> Action {
        if self.focus == Panel::Timeline {
            return Action::None;
        }
        let i = self.focus.index();
        let len = self.len(self.focus, rows);
        let next = (self.selected[i] as i64 + by).clamp(0, len.saturating_sub(1) as i64);
        self.selected[i] = next as usize;
        Action::None
    }

    fn len(&self, panel: Panel, rows: &Rows) -> usize {
        match panel {
            Panel::Blockers => rows.blockers.len(),
            Panel::Hotspots => rows.hotspots,
            Panel::Workers => rows.workers.len(),
            Panel::Timeline => 0,
        }
    }

    fn clamp(&mut self, rows: &Rows) {
        for panel in [Panel::Blockers, Panel::Hotspots, Panel::Workers] {
            let len = self.len(panel, rows);
            let i = panel.index();
            self.selected[i] = self.selected[i].min(len.saturating_sub(1));
        }
    }

    /// Moves the timeline's cursor one step; with `extend`, the window follows it.
    fn move_cursor(&mut self, right: bool, extend: bool) -> Action {
        let step = ((self.view.1 - self.view.0) / CURSOR_STEPS).max(1);
        let before = self.cursor;
        self.cursor = if right {
            (self.cursor + step).min(self.bounds.1)
        } else {
            self.cursor.saturating_sub(step).max(self.bounds.0)
        };
        // Keep the cursor in view, panning when it leaves.
        let span = self.view.1 - self.view.0;
        if self.cursor < self.view.0 {
            self.view = (self.cursor, self.cursor + span);
        } else if self.cursor > self.view.1 {
            self.view = (self.cursor - span, self.cursor);
        }
        if !extend {
            return Action::None;
        }
        // Shift+arrow: grow the window from where the cursor was.
        match self.window_range() {
            Some((from, to)) if before == to && right => {
                self.set_window(Some(from), Some(self.cursor))
            }
            Some((from, to)) if before == from && !right => {
                self.set_window(Some(self.cursor), Some(to))
            }
            _ if right => self.set_window(Some(before), Some(self.cursor)),
            _ => self.set_window(Some(self.cursor), Some(before)),
        }
    }

    /// Sets one or both window edges; an edge past the other one moves the other to the end of
    /// the recording on that side.
    fn set_window(&mut self, from: Option<u64>, to: Option<u64>) -> Action {
        let (cur_from, cur_to) = self.window_range().unwrap_or(self.bounds);
        let mut from = from.unwrap_or(cur_from);
        let mut to = to.unwrap_or(cur_to);
        if from >= to {
            if to == cur_to {
                to = self.bounds.1;
            } else {
                from = self.bounds.0;
            }
        }
        if from >= to {
            return Action::None;
        }
        self.window = Window { from, to };
        Action::Window(self.window)
    }

    fn zoom(&mut self, zoom_in: bool) -> Action {
        let span = self.view.1 - self.view.0;
        let full = self.bounds.1 - self.bounds.0;
        let span = if zoom_in {
            (span / 2).max(MIN_SPAN.min(full))
        } else {
            span.saturating_mul(2).min(full)
        };
        // Centred on the cursor, kept inside the recording.
        let from = self
            .cursor
            .saturating_sub(span / 2)
            .clamp(self.bounds.0, self.bounds.1 - span);
        self.view = (from, from + span);
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn keys(state: &mut State, rows: &Rows, codes: &[KeyCode]) -> Vec<Action> {
        codes.iter().map(|c| state.update(key(*c), rows)).collect()
    }

    fn rows() -> Rows {
        Rows {
            flame: None,
            blockers: vec![7, 3, 9],
            hotspots: 5,
            tasks: vec![12, 5, 40, 8, 9],
            workers: vec![100, 101],
        }
    }

    #[test]
    fn t_lists_the_tasks_s_orders_them_and_enter_opens_one() {
        let mut s = State::new(0, S);
        let r = rows();
        keys(&mut s, &r, &[KeyCode::Tab, KeyCode::Down, KeyCode::Enter]);
        assert_eq!(s.overlay, Overlay::None, "hotspot rows open nothing");
        keys(&mut s, &r, &[KeyCode::Char('t')]);
        assert_eq!(s.listing, Listing::Tasks);
        assert_eq!(s.row(Panel::Hotspots), 0, "a new list starts at its top");
        keys(&mut s, &r, &[KeyCode::Char('s'), KeyCode::Char('s')]);
        assert_eq!(s.task_order, TaskOrder::LongPolls);
        keys(&mut s, &r, &[KeyCode::Char('s')]);
        assert_eq!(s.task_order, TaskOrder::Cpu, "s cycles");
        keys(&mut s, &r, &[KeyCode::Down, KeyCode::Down, KeyCode::Enter]);
        assert_eq!(s.overlay, Overlay::Task { id: 40, scroll: 0 });
        keys(&mut s, &r, &[KeyCode::Char('j'), KeyCode::Char('y')]);
        assert_eq!(s.overlay, Overlay::Task { id: 40, scroll: 1 });
        keys(&mut s, &r, &[KeyCode::Esc, KeyCode::Char('t')]);
        assert_eq!(
            s.listing,
            Listing::Hotspots,
            "t again: back to the hotspots"
        );
        keys(&mut s, &r, &[KeyCode::Char('s')]);
        assert_eq!(s.task_order, TaskOrder::Cpu, "s orders tasks only");
    }

    #[test]
    fn tab_cycles_the_panels_and_selections_stay_in_range() {
        let mut s = State::new(0, 10 * S);
        let r = rows();
        keys(
            &mut s,
            &r,
            &[KeyCode::Down, KeyCode::Down, KeyCode::Down, KeyCode::Down],
        );
        assert_eq!(s.row(Panel::Blockers), 2, "three blockers: the last is 2");
        keys(&mut s, &r, &[KeyCode::Tab]);
        assert_eq!(s.focus, Panel::Hotspots);
        keys(&mut s, &r, &[KeyCode::End]);
        assert_eq!(s.row(Panel::Hotspots), 4);
        keys(&mut s, &r, &[KeyCode::Tab, KeyCode::Tab, KeyCode::Tab]);
        assert_eq!(s.focus, Panel::Blockers);
        keys(&mut s, &r, &[KeyCode::BackTab]);
        assert_eq!(s.focus, Panel::Timeline);
        // A shorter list (after a filter) pulls the selection back.
        let short = Rows {
            blockers: vec![7],
            ..rows()
        };
        s.update(key(KeyCode::Char('x')), &short);
        assert_eq!(s.row(Panel::Blockers), 0);
    }

    #[test]
    fn enter_opens_the_selected_blocker_and_esc_goes_back() {
        let mut s = State::new(0, 10 * S);
        let r = rows();
        keys(&mut s, &r, &[KeyCode::Down, KeyCode::Enter]);
        assert_eq!(
            s.overlay,
            Overlay::Drilldown {
                group: 3,
                scroll: 0
            }
        );
        keys(&mut s, &r, &[KeyCode::Char('j'), KeyCode::Char('j')]);
        assert_eq!(
            s.overlay,
            Overlay::Drilldown {
                group: 3,
                scroll: 2
            }
        );
        assert_eq!(
            s.update(key(KeyCode::Char('y')), &r),
            Action::Copy { group: 3 }
        );
        keys(&mut s, &r, &[KeyCode::Esc]);
        assert_eq!(s.overlay, Overlay::None);
        assert_eq!(s.update(key(KeyCode::Char('q')), &r), Action::Quit);
    }

    #[test]
    fn the_timeline_zooms_around_the_cursor_and_selects_a_window() {
        let mut s = State::new(0, 10 * S);
        let r = rows();
        keys(&mut s, &r, &[KeyCode::BackTab]);
        assert_eq!(s.focus, Panel::Timeline);
        // 30 steps of 1/100 of the view: the cursor at 3 s.
        for _ in 0..30 {
            s.update(key(KeyCode::Right), &r);
        }
        assert_eq!(s.cursor, 3 * S);
        keys(&mut s, &r, &[KeyCode::Char('+')]);
        assert_eq!(
            s.view,
            (S / 2, S / 2 + 5 * S),
            "half the span, centred on 3 s"
        );
        assert_eq!(
            s.update(key(KeyCode::Char('[')), &r),
            Action::Window(Window {
                from: 3 * S,
                to: 10 * S
            })
        );
        for _ in 0..20 {
            s.update(key(KeyCode::Right), &r);
        }
        assert_eq!(s.cursor, 4 * S);
        assert_eq!(
            s.update(key(KeyCode::Char(']')), &r),
            Action::Window(Window {
                from: 3 * S,
                to: 4 * S
            })
        );
        keys(&mut s, &r, &[KeyCode::Char('=')]);
        assert_eq!(s.view, (0, 10 * S));
        assert_eq!(s.update(key(KeyCode::Esc), &r), Action::Window(Window::ALL));
        assert_eq!(s.window, Window::ALL);
    }

    #[test]
    fn shift_arrows_grow_a_window_from_the_cursor() {
        let mut s = State::new(0, 10 * S);
        let r = rows();
        s.focus = Panel::Timeline;
        s.cursor = 2 * S;
        let shift_right = KeyEvent::new(KeyCode::Right, KeyModifiers::SHIFT);
        s.update(shift_right, &r);
        let last = s.update(shift_right, &r);
        assert_eq!(
            last,
            Action::Window(Window {
                from: 2 * S,
                to: 2 * S + 2 * S / 10
            })
        );
    }

    #[test]
    fn the_filter_is_typed_then_kept_and_n_moves_between_matches() {
        let mut s = State::new(0, S);
        let r = rows();
        keys(
            &mut s,
            &r,
            &[
                KeyCode::Char('/'),
                KeyCode::Char('S'),
                KeyCode::Char('l'),
                KeyCode::Char('q'),
                KeyCode::Backspace,
                KeyCode::Enter,
            ],
        );
        assert_eq!(s.filter, "sl", "lower-cased; q typed, not quit");
        assert!(!s.editing);
        assert!(s.matches(&["app::sleepy", "x.rs"]));
        assert!(!s.matches(&["app::busy", "x.rs"]));
        keys(&mut s, &r, &[KeyCode::Char('n'), KeyCode::Char('n')]);
        assert_eq!(s.row(Panel::Blockers), 2);
        keys(&mut s, &r, &[KeyCode::Char('N')]);
        assert_eq!(s.row(Panel::Blockers), 1);
        keys(&mut s, &r, &[KeyCode::Esc]);
        assert!(s.filter.is_empty());
    }

    #[test]
    fn enter_on_a_worker_pins_its_hotspots_and_f_toggles_lines() {
        let mut s = State::new(0, S);
        let r = rows();
        keys(
            &mut s,
            &r,
            &[KeyCode::Tab, KeyCode::Tab, KeyCode::Down, KeyCode::Enter],
        );
        assert_eq!(s.pinned_worker, Some(101));
        keys(&mut s, &r, &[KeyCode::Enter]);
        assert_eq!(s.pinned_worker, None);
        keys(&mut s, &r, &[KeyCode::Char('p')]);
        assert_eq!(s.listing, Listing::Polls);
        keys(&mut s, &r, &[KeyCode::Char('f')]);
        assert!(
            !s.by_line && s.listing == Listing::Hotspots,
            "f goes back to the hotspots as they were"
        );
        keys(&mut s, &r, &[KeyCode::Char('f')]);
        assert!(s.by_line);
        keys(&mut s, &r, &[KeyCode::Char('?')]);
        assert_eq!(s.overlay, Overlay::Help);
        assert_eq!(
            s.update(key(KeyCode::Char('q')), &r),
            Action::None,
            "q closes help"
        );
        assert_eq!(s.overlay, Overlay::None);
    }

    #[test]
    fn ctrl_c_quits_even_while_typing() {
        let mut s = State::new(0, S);
        s.update(key(KeyCode::Char('/')), &rows());
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(s.update(ctrl_c, &rows()), Action::Quit);
    }
}
