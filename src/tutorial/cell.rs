//! Code cells: excerpts of a chapter's own source, shown on its page beside their output.
//!
//! A chapter marks a region of its source file with a line `// cell: NAME` before it and a
//! line `// end cell` after it. The chapter module reads its own file with `include_str!`
//! (the tutorial's `source!` macro), so the excerpt a page shows is, byte
//! for byte, the code the program was compiled from — never a copy kept in the prose.
//!
//! ```
//! use wengert::tutorial::cell::Source;
//!
//! let source = Source {
//!     path: "example.rs",
//!     text: "fn f() {\n    // cell: double\n    let y = 2 * x;\n    // end cell\n}\n",
//! };
//! let cell = source.cell("double").unwrap();
//! assert_eq!(cell.code, "let y = 2 * x;");
//! assert_eq!((cell.first_line, cell.last_line), (3, 3));
//! assert!(source.cell("missing").is_err());
//! ```

use std::fmt;

/// The line that opens a cell (after indentation), followed by the cell's name.
pub const OPEN: &str = "// cell: ";
/// The line that closes a cell (after indentation).
pub const CLOSE: &str = "// end cell";

/// A source file compiled into the tutorial: its path in the repository and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The path from the repository root, e.g. `src/tutorial/ch04_shortcuts.rs`.
    pub path: &'static str,
    /// The whole file.
    pub text: &'static str,
}

/// One excerpt of a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The name after `// cell:`.
    pub name: String,
    /// The file it was cut from.
    pub path: &'static str,
    /// The line number (1-based) of its first line of code.
    pub first_line: usize,
    /// The line number of its last line of code.
    pub last_line: usize,
    /// The lines between the markers, with their common indentation removed.
    pub code: String,
}

/// What can be wrong with a file's cell markers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CellError {
    /// No cell of that name.
    Missing {
        /// The file.
        path: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A cell opened and never closed, or opened inside another.
    Unclosed {
        /// The file.
        path: &'static str,
        /// The cell's name.
        name: String,
        /// The line of its `// cell:` marker.
        line: usize,
    },
    /// An `// end cell` with no open cell.
    StrayEnd {
        /// The file.
        path: &'static str,
        /// The line of the marker.
        line: usize,
    },
    /// A cell with no code between its markers.
    Empty {
        /// The file.
        path: &'static str,
        /// The cell's name.
        name: String,
        /// The line of its `// cell:` marker.
        line: usize,
    },
    /// Two cells with the same name.
    Duplicate {
        /// The file.
        path: &'static str,
        /// The name used twice.
        name: String,
        /// The line of the second marker.
        line: usize,
    },
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellError::Missing { path, name } => {
                write!(
                    f,
                    "{path}: no cell `{name}` (a `{OPEN}{name}` line is missing)"
                )
            }
            CellError::Unclosed { path, name, line } => {
                write!(f, "{path}:{line}: cell `{name}` is not closed by `{CLOSE}`")
            }
            CellError::StrayEnd { path, line } => {
                write!(f, "{path}:{line}: `{CLOSE}` without an open cell")
            }
            CellError::Empty { path, name, line } => {
                write!(f, "{path}:{line}: cell `{name}` is empty")
            }
            CellError::Duplicate { path, name, line } => {
                write!(f, "{path}:{line}: a second cell named `{name}`")
            }
        }
    }
}

impl std::error::Error for CellError {}

impl Source {
    /// Every cell of the file, in order, after checking that each marker is closed, no cell
    /// is empty and no name is used twice.
    pub fn cells(&self) -> Result<Vec<Cell>, CellError> {
        let path = self.path;
        let mut cells: Vec<Cell> = Vec::new();
        let mut open: Option<(String, usize, Vec<&str>)> = None;
        for (i, line) in self.text.lines().enumerate() {
            let number = i + 1;
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix(OPEN) {
                if let Some((name, line, _)) = open {
                    return Err(CellError::Unclosed { path, name, line });
                }
                let name = name.trim().to_string();
                if cells.iter().any(|c| c.name == name) {
                    return Err(CellError::Duplicate {
                        path,
                        name,
                        line: number,
                    });
                }
                open = Some((name, number, Vec::new()));
            } else if trimmed == CLOSE {
                let Some((name, line, lines)) = open.take() else {
                    return Err(CellError::StrayEnd { path, line: number });
                };
                if lines.iter().all(|l| l.trim().is_empty()) {
                    return Err(CellError::Empty { path, name, line });
                }
                cells.push(Cell {
                    name,
                    path,
                    first_line: line + 1,
                    last_line: number - 1,
                    code: dedent(&lines),
                });
            } else if let Some((_, _, lines)) = open.as_mut() {
                lines.push(line);
            }
        }
        match open {
            Some((name, line, _)) => Err(CellError::Unclosed { path, name, line }),
            None => Ok(cells),
        }
    }

    /// The cell called `name`.
    pub fn cell(&self, name: &str) -> Result<Cell, CellError> {
        self.cells()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| CellError::Missing {
                path: self.path,
                name: name.to_string(),
            })
    }
}

/// The lines with their common leading whitespace removed, blank lines at either end
/// dropped, joined with newlines.
fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let cut: Vec<&str> = lines
        .iter()
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .map(str::trim_end)
        .collect();
    let start = cut.iter().position(|l| !l.is_empty()).unwrap_or(0);
    let end = cut.iter().rposition(|l| !l.is_empty()).map_or(0, |e| e + 1);
    cut[start..end].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &'static str) -> Source {
        Source { path: "t.rs", text }
    }

    #[test]
    fn cells_are_cut_dedented_and_numbered() {
        let s = source(
            "fn a() {\n    // cell: one\n    let x = 1;\n        nested();\n\n    // end cell\n}\n// cell: two\nfn b() {}\n// end cell\n",
        );
        let cells = s.cells().unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0].code, "let x = 1;\n    nested();");
        assert_eq!((cells[0].first_line, cells[0].last_line), (3, 5));
        assert_eq!(cells[1].code, "fn b() {}");
    }

    #[test]
    fn bad_markers_are_errors_that_name_the_line() {
        let unclosed = source("// cell: a\nx\n");
        assert!(matches!(
            unclosed.cells(),
            Err(CellError::Unclosed { line: 1, .. })
        ));
        let nested = source("// cell: a\n// cell: b\nx\n// end cell\n");
        assert!(matches!(nested.cells(), Err(CellError::Unclosed { .. })));
        let stray = source("x\n// end cell\n");
        assert!(matches!(
            stray.cells(),
            Err(CellError::StrayEnd { line: 2, .. })
        ));
        let empty = source("// cell: a\n   \n// end cell\n");
        let err = empty.cells().unwrap_err();
        assert!(err.to_string().contains("`a` is empty"), "{err}");
        let twice = source("// cell: a\nx\n// end cell\n// cell: a\ny\n// end cell\n");
        assert!(matches!(twice.cells(), Err(CellError::Duplicate { .. })));
        let missing = source("// cell: a\nx\n// end cell\n")
            .cell("b")
            .unwrap_err();
        assert!(missing.to_string().contains("no cell `b`"));
    }
}
