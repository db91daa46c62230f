//! The tables every command prints (`plan`, `apply`'s result, `status`, `history`), built with comfy-table so
//! they fit the terminal: on a terminal the columns shrink to its width and a cell too long for its column is cut
//! with `…` (a row is always one line, never wrapped mid-cell); `--wide`, a pipe or a file get every value in
//! full. Colour (terraform's green/yellow/red for created/updated/deleted/failed) only on a terminal, never when
//! `NO_COLOR` is set. What to do is decided once, in [`Layout`], so tests can inject a width.

use std::io::IsTerminal;

use comfy_table::{Attribute, CellAlignment, Color, ColumnConstraint, ContentArrangement, Row, Table, presets};

/// How a table (or a line of text) is laid out for where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The width to fit, in terminal columns; None prints every value in full.
    pub width: Option<u16>,
    /// Whether cells are coloured.
    pub colour: bool,
}

impl Layout {
    /// Full values, no colour: pipes, files, `--wide` without a terminal, and tests of the plain text.
    pub const PLAIN: Layout = Layout { width: None, colour: false };

    /// The layout of standard output: its terminal's width (`COLUMNS` when set, as the shells set it for their
    /// programs) unless `wide`, and colour unless `NO_COLOR`; plain when it is not a terminal.
    pub fn stdout(wide: bool) -> Layout {
        if !std::io::stdout().is_terminal() {
            return Layout::PLAIN;
        }
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<u16>().ok()).filter(|c| *c > 0);
        let detected = || console::Term::stdout().size_checked().map(|(_, cols)| cols);
        Layout { width: if wide { None } else { columns.or_else(detected) }, colour: colour_allowed() }
    }

    /// Cuts a line of text that is not a table (the plan's lines) to the width, with `…` where it was cut.
    /// Escape sequences (colour) do not count towards the width and are kept.
    pub fn fit_line(&self, line: &str) -> String {
        match self.width {
            Some(w) => console::truncate_str(line, usize::from(w), "…").into_owned(),
            None => line.to_string(),
        }
    }
}

/// Colour is for people at a terminal that did not opt out: <https://no-color.org> (set and not empty).
pub fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The meaning a cell's colour carries, as terraform users read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// Created, completed, passed.
    Good,
    /// Updated, in progress.
    Change,
    /// Deleted, failed, rolled back, missing.
    Bad,
    /// Nothing happened.
    Quiet,
}

/// One cell: its text and the tone it is painted in on a colour terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell { text: text.into(), tone }
    }
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Cell {
        Cell::toned(text, Tone::Plain)
    }
}

/// A column: its header, whether its values are right-aligned (counts), and whether it keeps its full width when
/// the table must shrink (the row's name and short counts: cutting them would leave rows nobody can tell apart).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub right: bool,
    pub kept: bool,
}

impl Column {
    pub const fn left(header: &'static str) -> Column {
        Column { header, right: false, kept: false }
    }
    pub const fn right(header: &'static str) -> Column {
        Column { header, right: true, kept: false }
    }
    /// Never shrunk to fit: the other columns give way.
    pub const fn kept(self) -> Column {
        Column { kept: true, ..self }
    }
}

/// The table as text, every line ending in `\n`: a header, one line per row, two spaces between columns, no
/// borders, no trailing blanks.
pub fn render(layout: Layout, columns: &[Column], rows: Vec<Vec<Cell>>) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    // Styling is decided here, not by comfy-table's own look at the terminal.
    table.force_no_tty();
    if layout.colour {
        // Only the text: the blanks that pad a cell stay plain, so no line ends in painted spaces.
        table.enforce_styling().style_text_only();
    }
    match layout.width {
        Some(w) => {
            table.set_content_arrangement(ContentArrangement::Dynamic).set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    // No delimiter occurs in the values, so a cell too long for its column is cut character by character (as
    // much of it shown as fits) rather than at its first word.
    table.set_delimiter('\u{0}');
    let mut header = Row::from(columns.iter().map(|c| comfy_table::Cell::new(c.header)).collect::<Vec<_>>());
    header.max_height(1);
    table.set_header(header);
    for cells in rows {
        let mut row = Row::from(cells.into_iter().map(cell).collect::<Vec<_>>());
        row.max_height(1);
        table.add_row(row);
    }
    let last = columns.len().saturating_sub(1);
    for (i, (column, spec)) in table.column_iter_mut().zip(columns).enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        column.set_cell_alignment(if spec.right { CellAlignment::Right } else { CellAlignment::Left });
        if spec.kept {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn cell(c: Cell) -> comfy_table::Cell {
    let plain = comfy_table::Cell::new(c.text);
    match c.tone {
        Tone::Plain => plain,
        Tone::Good => plain.fg(Color::Green),
        Tone::Change => plain.fg(Color::Yellow),
        Tone::Bad => plain.fg(Color::Red),
        Tone::Quiet => plain.add_attribute(Attribute::Dim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [Column; 3] = [Column::left("NAME").kept(), Column::right("COUNT"), Column::left("MESSAGE")];

    fn rows() -> Vec<Vec<Cell>> {
        vec![
            vec!["documents".into(), "2".into(), Cell::toned("created; rollout completed", Tone::Good)],
            vec!["search".into(), "12".into(), Cell::toned("failed: the image has no linux/arm64", Tone::Bad)],
        ]
    }

    #[test]
    fn full_values_without_a_width() {
        assert_eq!(
            render(Layout::PLAIN, &COLUMNS, rows()),
            "\
NAME       COUNT  MESSAGE
documents      2  created; rollout completed
search        12  failed: the image has no linux/arm64
"
        );
    }

    #[test]
    fn a_narrow_terminal_cuts_cells_instead_of_wrapping_them() {
        let text = render(Layout { width: Some(30), colour: false }, &COLUMNS, rows());
        assert_eq!(text.lines().count(), 3, "one line per row:\n{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 30, "{line:?} is wider than 30:\n{text}");
        }
        let documents = text.lines().nth(1).unwrap();
        assert!(documents.starts_with("documents  ") && documents.ends_with('…'), "the name is kept whole: {text}");
        assert!(documents.contains("created; r"), "as much of the value as fits is shown: {text}");
    }

    #[test]
    fn colour_only_when_the_layout_has_it() {
        let plain = render(Layout::PLAIN, &COLUMNS, rows());
        assert!(!plain.contains('\x1b'), "{plain:?}");
        let coloured = render(Layout { width: None, colour: true }, &COLUMNS, rows());
        assert!(coloured.contains("\x1b[38;5;10mcreated; rollout completed"), "{coloured:?}");
        assert!(coloured.contains("\x1b[38;5;9mfailed"), "{coloured:?}");
        assert_eq!(console::strip_ansi_codes(&coloured).lines().collect::<Vec<_>>(), plain.lines().collect::<Vec<_>>());
    }

    #[test]
    fn lines_are_cut_to_the_width() {
        let narrow = Layout { width: Some(10), colour: false };
        assert_eq!(narrow.fit_line("~ documents (mcp-prod): update"), "~ documen…");
        assert_eq!(narrow.fit_line("short"), "short");
        assert_eq!(Layout::PLAIN.fit_line("~ documents (mcp-prod): update"), "~ documents (mcp-prod): update");
    }
}
