//! A chapter's output as a notebook page: prose, code cells cut from the chapter's source,
//! their outputs (tables, text) and figures, rendered for the terminal or as Markdown.

use super::Chapter;
use super::cell::{Cell, Source};
use super::plot::Figure;
use std::fmt::Write as _;

/// One piece of a page, in reading order.
#[derive(Clone, Debug)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A paragraph of prose (Markdown inline syntax allowed: `code`, *emphasis*).
    Prose(String),
    /// Which residual block the page uses, and why: shown at the top.
    Variant(String),
    /// A code cell: an excerpt of the chapter's source that ran.
    Cell(Cell),
    /// A table of computed values (a cell's output).
    Table(Table),
    /// Preformatted output (a tape listing, an error message).
    Output(String),
    /// A figure, written as SVG next to the page.
    Figure(Figure),
    /// The chapter's takeaways, as bullets.
    Takeaways(Vec<String>),
}

/// How a claim of the notebook fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The measurement agrees with the claim.
    Confirmed,
    /// The measurement contradicts the claim.
    Refuted,
    /// True in some settings and not in others; the measured column says which.
    Depends,
}

impl Verdict {
    /// "confirmed", "refuted" or "depends".
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Refuted => "refuted",
            Verdict::Depends => "depends",
        }
    }
}

/// A claim of the notebook and what a chapter measured about it.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The claim, in a sentence.
    pub claim: String,
    /// The measurement, with its numbers.
    pub measured: String,
    /// The verdict, decided from the numbers.
    pub verdict: Verdict,
}

/// A table: a header row and rows of cells. The first column is left-aligned, the others
/// right-aligned (they hold numbers).
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headings.
    pub header: Vec<String>,
    /// The rows; each as long as the header.
    pub rows: Vec<Vec<String>>,
    /// Whether every column is left-aligned (text), rather than the first only.
    pub text: bool,
}

impl Table {
    /// A table with these column headings and no rows.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            text: false,
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

    /// The same table with every column left-aligned (columns of text, not numbers).
    pub fn left_aligned(mut self) -> Self {
        self.text = true;
        self
    }

    /// The table in GitHub Markdown; a `|` inside a cell is escaped.
    pub fn to_markdown(&self) -> String {
        let escape = |cells: &[String]| -> Vec<String> {
            cells.iter().map(|c| c.replace('|', "\\|")).collect()
        };
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", escape(&self.header).join(" | "));
        let aligns: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 || self.text { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", aligns.join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", escape(row).join(" | "));
        }
        out
    }
}

/// A chapter's page: a numbered title, its blocks, and the claims it tested.
#[derive(Clone, Debug)]
pub struct Page {
    /// Chapter number.
    pub number: usize,
    /// Chapter title.
    pub title: String,
    /// The chapter's source file, where its cells are cut from.
    pub source: Option<Source>,
    /// The content, in reading order.
    pub blocks: Vec<Block>,
    /// The notebook's claims this chapter tested, for the claim table.
    pub claims: Vec<Claim>,
}

impl Page {
    /// An empty page with no source file (it can hold no cells).
    pub fn new(number: usize, title: impl Into<String>) -> Self {
        Page {
            number,
            title: title.into(),
            source: None,
            blocks: Vec::new(),
            claims: Vec::new(),
        }
    }

    /// An empty page for a chapter, whose cells come from the chapter's source.
    pub fn of(chapter: &Chapter) -> Self {
        Page {
            source: Some(chapter.source),
            ..Page::new(chapter.number, chapter.title)
        }
    }

    /// Appends a section heading.
    pub fn heading(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Heading(text.into()));
    }

    /// Appends a paragraph of prose.
    pub fn prose(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Prose(text.into()));
    }

    /// Says which residual block the page uses and why.
    pub fn variant(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Variant(text.into()));
    }

    /// Appends the code cell `name` of the chapter's source.
    ///
    /// # Panics
    /// If the page has no source, or the source has no such cell (or bad markers): the
    /// tutorial's own tests run every page and fail on it.
    #[track_caller]
    pub fn cell(&mut self, name: &str) {
        let source = self
            .source
            .unwrap_or_else(|| panic!("page {} has no source for cell `{name}`", self.number));
        match source.cell(name) {
            Ok(cell) => self.blocks.push(Block::Cell(cell)),
            Err(e) => panic!("{e}"),
        }
    }

    /// Appends the code cell `name` of another source file of the tutorial (code several
    /// chapters share, such as the training step).
    ///
    /// # Panics
    /// If the source has no such cell (or bad markers).
    #[track_caller]
    pub fn cell_from(&mut self, source: Source, name: &str) {
        match source.cell(name) {
            Ok(cell) => self.blocks.push(Block::Cell(cell)),
            Err(e) => panic!("{e}"),
        }
    }

    /// Appends a table.
    pub fn table(&mut self, table: Table) {
        self.blocks.push(Block::Table(table));
    }

    /// Appends preformatted output.
    pub fn output(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Output(text.into()));
    }

    /// Appends a figure.
    pub fn figure(&mut self, figure: Figure) {
        self.blocks.push(Block::Figure(figure));
    }

    /// Appends the takeaways.
    pub fn takeaways<S: Into<String>>(&mut self, points: impl IntoIterator<Item = S>) {
        self.blocks.push(Block::Takeaways(
            points.into_iter().map(Into::into).collect(),
        ));
    }

    /// Records a claim of the notebook and its verdict (shown in the tutorial's claim table).
    pub fn claim(
        &mut self,
        claim: impl Into<String>,
        measured: impl Into<String>,
        verdict: Verdict,
    ) {
        self.claims.push(Claim {
            claim: claim.into(),
            measured: measured.into(),
            verdict,
        });
    }

    /// The figures on the page, in order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Figure(f) => Some(f),
            _ => None,
        })
    }

    /// The code cells on the page, in order.
    pub fn cells(&self) -> impl Iterator<Item = &Cell> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Cell(c) => Some(c),
            _ => None,
        })
    }

    /// The title line, e.g. `Chapter 3 — The residual block`.
    pub fn title_line(&self) -> String {
        format!("Chapter {} — {}", self.number, self.title)
    }

    /// The page for a terminal: prose wrapped at 92 columns, cells with their source lines
    /// and a gutter, outputs indented, figures named by the file they were written to (in
    /// `figure_dir`).
    pub fn to_text(&self, figure_dir: &str) -> String {
        let mut out = String::new();
        let title = self.title_line();
        let _ = writeln!(out, "{title}\n{}\n", "═".repeat(title.chars().count()));
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(out, "{h}\n{}\n", "─".repeat(h.chars().count()));
                }
                Block::Prose(p) => {
                    let _ = writeln!(out, "{}\n", wrap(&plain(p), 92));
                }
                Block::Variant(v) => {
                    let _ = writeln!(
                        out,
                        "{}\n",
                        wrap(&plain(&format!("Block used here: {v}")), 92)
                    );
                }
                Block::Cell(c) => {
                    let _ = writeln!(
                        out,
                        "  ┌─ In [{}]  {}:{}–{}",
                        c.name, c.path, c.first_line, c.last_line
                    );
                    for line in c.code.lines() {
                        let _ = writeln!(out, "  │ {line}");
                    }
                    let _ = writeln!(out, "  └─\n");
                }
                Block::Table(t) => {
                    for line in t.to_text().lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                    out.push('\n');
                }
                Block::Output(c) => {
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
                Block::Takeaways(points) => {
                    let _ = writeln!(out, "Takeaways");
                    for p in points {
                        let _ =
                            writeln!(out, "  • {}", wrap(&plain(p), 88).replace('\n', "\n    "));
                    }
                    out.push('\n');
                }
            }
        }
        out
    }

    /// The page in Markdown; figures are linked as `figure_dir/<file>.svg`, cells link to
    /// their lines in the source (`source_root` is the repository root seen from the page).
    pub fn to_markdown(&self, figure_dir: &str, source_root: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}\n", self.title_line());
        for block in &self.blocks {
            match block {
                Block::Heading(h) => {
                    let _ = writeln!(out, "## {h}\n");
                }
                Block::Prose(p) => {
                    let _ = writeln!(out, "{p}\n");
                }
                Block::Variant(v) => {
                    let _ = writeln!(out, "> **Block used here:** {v}\n");
                }
                Block::Cell(c) => {
                    let _ = writeln!(
                        out,
                        "<sub>In [{name}] · [{path}, lines {a}–{b}]({source_root}/{path}#L{a}-L{b})</sub>\n\n```rust\n{code}\n```\n",
                        name = c.name,
                        path = c.path,
                        a = c.first_line,
                        b = c.last_line,
                        code = c.code
                    );
                }
                Block::Table(t) => {
                    let _ = writeln!(out, "{}", t.to_markdown());
                }
                Block::Output(c) => {
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
                Block::Takeaways(points) => {
                    let _ = writeln!(out, "## Takeaways\n");
                    for p in points {
                        let _ = writeln!(out, "- {p}");
                    }
                    out.push('\n');
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
        t.row(["a|b", "1"]);
        assert!(t.to_markdown().contains("| a\\|b | 1 |"));
        assert!(t.clone().left_aligned().to_markdown().contains("|---|---|"));
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
