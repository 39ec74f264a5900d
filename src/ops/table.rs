//! Text for the terminal: aligned tables, human durations, and values made safe to print
//! (a webhook name or a receiver's answer could carry escape sequences).

use crate::domain::time::Millis;

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of text cells, aligned on output.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; its cells are cleaned of control characters.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let mut out = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The text with control characters (escape sequences, carriage returns, newlines) shown
/// escaped instead of acted on by the terminal.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Like [`clean`], but keeps line breaks and tabs: for multi-line bodies.
pub fn clean_lines(text: &str) -> String {
    text.lines().map(clean).collect::<Vec<_>>().join("\n")
}

/// `45s`, `12m 03s`, `3h 04m`, `2d 05h`.
pub fn duration(ms: Millis) -> String {
    let secs = ms.max(0) / 1000;
    let (m, s) = (secs / 60, secs % 60);
    let (h, d) = (m / 60, m / 60 / 24);
    if secs < 60 {
        format!("{secs}s")
    } else if m < 60 {
        format!("{m}m {s:02}s")
    } else if h < 48 {
        format!("{h}h {:02}m", m % 60)
    } else {
        format!("{d}d {:02}h", h % 24)
    }
}

/// A time relative to `now`: `in 12s`, `due`, `3m 10s ago`.
pub fn relative(at: Millis, now: Millis) -> String {
    if at > now {
        format!("in {}", duration(at - now))
    } else {
        "due".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let mut table = Table::new(&[("NAME", Align::Left), ("COUNT", Align::Right)]);
        table.row(vec!["a much longer name".into(), "7".into()]);
        table.row(vec!["x".into(), "12345".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME                COUNT");
        assert_eq!(lines[1], "a much longer name      7");
        assert_eq!(lines[2], "x                   12345");
    }

    #[test]
    fn escape_sequences_are_printed_not_obeyed() {
        assert_eq!(clean("ok\u{1b}[31mred\r\n"), "ok\\u{1b}[31mred\\r\\n");
        assert_eq!(clean_lines("a\nb\u{7}"), "a\nb\\u{7}");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59_999), "59s");
        assert_eq!(duration(61_000), "1m 01s");
        assert_eq!(duration(3 * 3_600_000 + 4 * 60_000), "3h 04m");
        assert_eq!(duration(50 * 3_600_000), "2d 02h");
        assert_eq!(relative(1_000, 2_000), "due");
        assert_eq!(relative(14_000, 2_000), "in 12s");
    }
}
