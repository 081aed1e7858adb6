//! A chapter's output as a notebook page: prose, tables, preformatted text and figures,
//! rendered for the terminal or as Markdown.

use super::plot::Figure;
use std::fmt::Write as _;

/// One piece of a page, in reading order.
#[derive(Clone, Debug)]
pub enum Block {
    /// A paragraph of prose (Markdown inline syntax allowed: `code`, *emphasis*).
    Prose(String),
    /// A table of computed values.
    Table(Table),
    /// Preformatted text (a tape listing, a sweep trace).
    Code(String),
    /// A figure, written as SVG next to the page.
    Figure(Figure),
}

/// A table: a header row and rows of cells. The first column is left-aligned, the others
/// right-aligned (they hold numbers).
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headings.
    pub header: Vec<String>,
    /// The rows; each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings and no rows.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i >= w.len() {
                    w.push(0);
                }
                w[i] = w[i].max(cell.chars().count());
            }
        }
        w
    }

    /// The table as aligned plain text.
    pub fn to_text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, width) in w.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                if i > 0 {
                    s.push_str("  ");
                }
                if i == 0 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", line(&self.header));
        let rule: Vec<String> = w.iter().map(|&n| "─".repeat(n)).collect();
        let _ = writeln!(out, "{}", rule.join("  "));
        for row in &self.rows {
            let _ = writeln!(out, "{}", line(row));
        }
        out
    }

    /// The table in GitHub Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let aligns: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", aligns.join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// A chapter's page: a numbered title and its blocks.
#[derive(Clone, Debug)]
pub struct Page {
    /// Chapter number.
    pub number: usize,
    /// Chapter title.
    pub title: String,
    /// The content, in reading order.
    pub blocks: Vec<Block>,
}

impl Page {
    /// An empty page.
    pub fn new(number: usize, title: impl Into<String>) -> Self {
        Page {
            number,
            title: title.into(),
            blocks: Vec::new(),
        }
    }

    /// Appends a paragraph of prose.
    pub fn prose(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Prose(text.into()));
    }

    /// Appends a table.
    pub fn table(&mut self, table: Table) {
        self.blocks.push(Block::Table(table));
    }

    /// Appends preformatted text.
    pub fn code(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Code(text.into()));
    }

    /// Appends a figure.
    pub fn figure(&mut self, figure: Figure) {
        self.blocks.push(Block::Figure(figure));
    }

    /// The figures on the page, in order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Figure(f) => Some(f),
            _ => None,
        })
    }

    /// The heading, e.g. `Chapter 3 — The residual block`.
    pub fn heading(&self) -> String {
        format!("Chapter {} — {}", self.number, self.title)
    }

    /// The page for a terminal: prose wrapped at 92 columns, tables aligned, figures named
    /// by the file they were written to (in `figure_dir`).
    pub fn to_text(&self, figure_dir: &str) -> String {
        let mut out = String::new();
        let heading = self.heading();
        let _ = writeln!(out, "{heading}\n{}\n", "═".repeat(heading.chars().count()));
        for block in &self.blocks {
            match block {
                Block::Prose(p) => {
                    let _ = writeln!(out, "{}\n", wrap(&plain(p), 92));
                }
                Block::Table(t) => {
                    for line in t.to_text().lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                    out.push('\n');
                }
                Block::Code(c) => {
                    for line in c.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                    out.push('\n');
                }
                Block::Figure(f) => {
                    let _ = writeln!(
                        out,
                        "  [figure] {} → {figure_dir}/{}\n",
                        f.caption,
                        f.file_name()
                    );
                }
            }
        }
        out
    }

    /// The page in Markdown; figures are linked as `figure_dir/<file>.svg`.
    pub fn to_markdown(&self, figure_dir: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", self.heading());
        for block in &self.blocks {
            match block {
                Block::Prose(p) => {
                    let _ = writeln!(out, "{p}\n");
                }
                Block::Table(t) => {
                    let _ = writeln!(out, "{}", t.to_markdown());
                }
                Block::Code(c) => {
                    let _ = writeln!(out, "```text\n{}\n```\n", c.trim_end());
                }
                Block::Figure(f) => {
                    let _ = writeln!(
                        out,
                        "![{}]({figure_dir}/{})\n\n*{}*\n",
                        f.caption,
                        f.file_name(),
                        f.caption
                    );
                }
            }
        }
        out
    }
}

/// Prose without the Markdown backticks, for the terminal.
fn plain(text: &str) -> String {
    text.replace(['`', '*'], "")
}

/// Greedy word wrap at `width` columns; existing line breaks are kept.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for (k, paragraph_line) in text.lines().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for word in paragraph_line.split_whitespace() {
            let n = word.chars().count();
            if col > 0 && col + 1 + n > width {
                out.push('\n');
                col = 0;
            } else if col > 0 {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += n;
        }
    }
    out
}

/// A number in at most `digits` significant digits, trailing zeros dropped, in scientific
/// notation when very small or very large: `0.0123`, `10`, `4.56e-7`, `1.2e16`.
pub fn sig(x: f64, digits: usize) -> String {
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{:.*e}", digits.saturating_sub(1), x);
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let magnitude = a.log10().floor() as i32;
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}")).to_string()
}

/// `"1.500"` → `"1.5"`, `"2.000"` → `"2"`; numbers without a decimal point unchanged.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_convert_to_markdown() {
        let mut t = Table::new(["name", "value"]);
        t.row(["a", "1"]);
        t.row(["longer", "123.5"]);
        let text = t.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "name    value");
        assert_eq!(lines[3], "longer  123.5");
        assert!(t.to_markdown().contains("| longer | 123.5 |"));
    }

    #[test]
    fn numbers_keep_significant_digits() {
        assert_eq!(sig(0.012345, 3), "0.0123");
        assert_eq!(sig(123.456, 3), "123");
        assert_eq!(sig(4.56e-7, 3), "4.56e-7");
        assert_eq!(sig(1.2e16, 2), "1.2e16");
        assert_eq!(sig(0.0, 3), "0");
        assert_eq!(sig(10.0, 4), "10");
        assert_eq!(sig(2.5e-7, 3), "2.5e-7");
        assert_eq!(sig(1.0e16, 2), "1e16");
    }

    #[test]
    fn prose_wraps() {
        let w = wrap("one two three four", 9);
        assert_eq!(w, "one two\nthree\nfour");
    }
}
