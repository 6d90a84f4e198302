//! The flame graph overlay: an icicle (callers above callees) of the zoomed frame's subtree,
//! each frame as wide as its weight, the program's code apart from libraries and the folded
//! runtime, search matches marked, the selected frame reversed with its figures on top.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use super::{overlay_block, seconds};
use crate::analysis::profile::Weight;
use crate::view::tui::flame::{FlameTree, Scope};
use crate::view::tui::snapshot::Snapshot;
use crate::view::tui::theme::Theme;
use crate::view::wording::cut_name;

/// Rows above the icicle: the selected frame, the search.
const HEADER_ROWS: u16 = 2;

#[allow(clippy::too_many_arguments)]
pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    s: &Snapshot,
    tree: &FlameTree,
    (zoom, selected): (u32, u32),
    filter: &str,
    theme: Theme,
) {
    overlay_block(frame, area);
    let (zoom, selected) =
        if (zoom as usize) < tree.nodes.len() && (selected as usize) < tree.nodes.len() {
            (zoom, selected)
        } else {
            (0, 0)
        };
    let scope = match tree.scope {
        Scope::All => "all threads".to_string(),
        Scope::Thread(tid) => format!(
            "thread {tid} {}",
            s.analysis.model.threads.get(&tid).map_or("?", |t| t.name())
        ),
        Scope::Blocker(group) => s
            .findings
            .blockers
            .iter()
            .find(|b| b.group == group)
            .map_or_else(
                || "a blocker".to_string(),
                |b| {
                    format!(
                        "[{}] {}",
                        b.kind.name(),
                        crate::view::wording::call_label(b)
                    )
                },
            ),
    };
    let weight = match (tree.scope, tree.weight) {
        (Scope::Blocker(_), _) => "time blocked or on CPU in its episodes",
        (_, Weight::Cpu) => "CPU samples",
        _ => "time blocked off CPU",
    };
    let (from, to) = s.findings.window.clip(&s.analysis.model);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focused_border())
        .title(Span::styled(
            format!(
                " Flame graph · {scope} · {weight} · {:.2}–{:.2} s ",
                seconds(s, from),
                seconds(s, to)
            ),
            theme.title(),
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height <= HEADER_ROWS || inner.width < 10 {
        return;
    }
    let total = tree.total().max(1);
    let node = &tree.nodes[selected as usize];
    let zoomed = tree.nodes[zoom as usize].value.max(1);
    let path: Vec<String> = tree
        .path(zoom)
        .iter()
        .skip(1)
        .map(|i| {
            cut_name(
                &crate::analysis::advice::short_name(&tree.nodes[*i as usize].name),
                32,
            )
        })
        .collect();
    let mut header = vec![
        Span::styled(node.name.to_string(), theme.title()),
        Span::raw(format!(
            "  {} · {:.1} % of all{}",
            tree.format_value(node.value),
            node.value as f64 * 100.0 / total as f64,
            if zoom != 0 {
                format!(
                    " · {:.1} % of the zoomed frame",
                    node.value as f64 * 100.0 / zoomed as f64
                )
            } else {
                String::new()
            }
        )),
    ];
    if tree.total() == 0 {
        header = vec![Span::styled(
            "nothing to show in this window (no stacks of this weight)",
            theme.dim(),
        )];
    }
    let second = if !filter.is_empty() {
        Line::from(Span::styled(
            format!(
                "search \"{filter}\": {:.1} % of all (matches marked)",
                tree.matched_share(filter) * 100.0
            ),
            theme.blocked(),
        ))
    } else if zoom != 0 {
        Line::from(Span::styled(
            format!("zoomed: {}", path.join(" ▸ ")),
            theme.dim(),
        ))
    } else {
        Line::raw("")
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(header), second]),
        Rect {
            height: HEADER_ROWS,
            ..inner
        },
    );
    let icicle = Rect {
        y: inner.y + HEADER_ROWS,
        height: inner.height - HEADER_ROWS,
        ..inner
    };
    // Keep the selected frame in view: scroll down when it is deeper than the rows.
    let depth_of = |i: u32| {
        tree.nodes[i as usize]
            .depth
            .saturating_sub(tree.nodes[zoom as usize].depth)
    };
    let top = depth_of(selected).saturating_sub(icicle.height.saturating_sub(1));
    let styles = Styles::new(theme);
    let mut place = vec![(zoom, 0.0f64, f64::from(icicle.width))];
    let buf = frame.buffer_mut();
    while let Some((i, x, w)) = place.pop() {
        let n = &tree.nodes[i as usize];
        let row = depth_of(i);
        if row >= top && row - top < icicle.height {
            let style = styles.of(tree, i, selected, filter);
            paint(buf, icicle, (x, w), icicle.y + row - top, &n.name, style);
        }
        if row + 1 >= top + icicle.height {
            // Its callees would be below the screen.
            continue;
        }
        let mut cx = x;
        for &c in &n.children {
            let cw = w * tree.nodes[c as usize].value as f64 / n.value.max(1) as f64;
            if cw >= 0.5 {
                place.push((c, cx, cw));
            }
            cx += cw;
        }
    }
}

/// A frame's cells on `row`, from column `x` for `w` columns (rounded), its name cut to fit.
fn paint(buf: &mut Buffer, area: Rect, (x, w): (f64, f64), row: u16, name: &str, style: Style) {
    let x0 = area.x + x.round() as u16;
    let x1 = (area.x + (x + w).round() as u16).min(area.x + area.width);
    if x1 <= x0 {
        return;
    }
    let width = usize::from(x1 - x0);
    // One column of the frame's own colour at its right end keeps neighbours apart.
    let text = if width > 2 {
        cut_name(name, width - 1)
    } else {
        String::new()
    };
    let mut chars = text.chars();
    for col in x0..x1 {
        let c = if col + 1 == x1 {
            ' '
        } else {
            chars.next().unwrap_or(' ')
        };
        if let Some(cell) = buf.cell_mut((col, row)) {
            cell.set_char(c).set_style(style);
        }
    }
}

/// The styles of frames: the program's code, libraries, the folded runtime, a search match,
/// the selected frame.
struct Styles {
    user: Style,
    library: Style,
    folded: Style,
    matched: Style,
    theme: Theme,
}

impl Styles {
    fn new(theme: Theme) -> Self {
        Styles {
            user: theme.flame_user(),
            library: theme.flame_library(),
            folded: theme.dim(),
            matched: theme.flame_match(),
            theme,
        }
    }

    fn of(&self, tree: &FlameTree, i: u32, selected: u32, filter: &str) -> Style {
        let n = &tree.nodes[i as usize];
        let base = if tree.matches(i, filter) {
            self.matched
        } else if n.folded {
            self.folded
        } else if n.user {
            self.user
        } else {
            self.library
        };
        if i == selected {
            base.patch(self.theme.selected())
        } else {
            base
        }
    }
}
