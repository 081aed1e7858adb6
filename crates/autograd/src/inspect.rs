//! Looking inside a tape: the Wengert list as a table, a memory report by op and by
//! region, and a Graphviz DOT export.
//!
//! The tape keeps, for every node, its op (with the tensors saved for backward), its
//! inputs, its shape, the source line and the region that recorded it — not its value.
//! Switch on [`Tape::set_value_summaries`] to keep a [`ValueSummary`] of every value, and
//! pass [`Gradients`] to show gradient norms after backward.

use crate::element::Element;
use crate::ops::Op;
use crate::tape::{Gradients, Tape};
use crate::tensor::Tensor;
use std::collections::BTreeMap;
use std::fmt::{self, Write};

/// Min, mean and max of a value's finite elements, and how many are NaN or infinite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueSummary<T> {
    /// Number of elements.
    pub numel: usize,
    /// Smallest finite element (NaN if there is none).
    pub min: T,
    /// Mean of the finite elements (NaN if there is none).
    pub mean: T,
    /// Largest finite element (NaN if there is none).
    pub max: T,
    /// Number of NaN elements.
    pub nan: usize,
    /// Number of +∞ elements.
    pub pos_inf: usize,
    /// Number of −∞ elements.
    pub neg_inf: usize,
}

impl<T: Element> ValueSummary<T> {
    /// The summary of a tensor, in one pass.
    pub fn of(t: &Tensor<T>) -> Self {
        let mut s = ValueSummary {
            numel: t.numel(),
            min: T::infinity(),
            mean: T::zero(),
            max: T::neg_infinity(),
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
        };
        let mut sum = 0.0f64;
        for &v in t.data() {
            if v.is_nan() {
                s.nan += 1;
            } else if v == T::infinity() {
                s.pos_inf += 1;
            } else if v == T::neg_infinity() {
                s.neg_inf += 1;
            } else {
                s.min = s.min.min(v);
                s.max = s.max.max(v);
                sum += v.to_f64().unwrap_or(f64::NAN);
            }
        }
        let finite = s.numel - s.nan - s.pos_inf - s.neg_inf;
        if finite == 0 {
            (s.min, s.mean, s.max) = (T::nan(), T::nan(), T::nan());
        } else {
            s.mean = T::of(sum / finite as f64);
        }
        s
    }

    /// Whether every element is finite.
    pub fn is_finite(&self) -> bool {
        self.nan + self.pos_inf + self.neg_inf == 0
    }

    /// "3 NaN, 1 +inf among 32 values".
    pub(crate) fn non_finite_counts(&self) -> String {
        let counts: Vec<String> = [
            (self.nan, "NaN"),
            (self.pos_inf, "+inf"),
            (self.neg_inf, "-inf"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        format!("{} among {} values", counts.join(", "), self.numel)
    }
}

/// `min -1.2 mean 0.03 max 2.5`, then the NaN and infinity counts if any; a single finite
/// value is printed alone.
impl<T: Element> fmt::Display for ValueSummary<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.numel == 1 && self.is_finite() {
            return f.write_str(&number(self.mean));
        }
        write!(
            f,
            "min {} mean {} max {}",
            number(self.min),
            number(self.mean),
            number(self.max)
        )?;
        if !self.is_finite() {
            write!(f, " ({})", self.non_finite_counts())?;
        }
        Ok(())
    }
}

/// A number in at most about 6 characters: `0.0123`, `12.5`, `1.2e-7`.
fn number<T: Element>(x: T) -> String {
    let x = x.to_f64().unwrap_or(f64::NAN);
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if (1e-3..1e5).contains(&x.abs()) {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.2e}")
    }
}

/// A byte count for people: `812 B`, `12.5 KiB`, `3.0 MiB`.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The Wengert list as a table (see [`Tape::table`]).
pub struct Table<'a, T: Element> {
    tape: &'a Tape<T>,
    grads: Option<&'a Gradients<T>>,
}

impl<'a, T: Element> Table<'a, T> {
    /// Adds a column with the norm of each node's gradient (blank where the output does
    /// not depend on the node).
    pub fn with_gradients(self, grads: &'a Gradients<T>) -> Self {
        Table {
            grads: Some(grads),
            ..self
        }
    }
}

impl<T: Element> Tape<T> {
    /// The Wengert list as a table, one row per node: index, op, input ids (`const` for an
    /// untracked input), shape, bytes saved for backward, and — when they are in use — the
    /// region, a [`ValueSummary`] and the gradient norm; last, the source line that
    /// recorded the node. `tape.to_string()` prints the same table.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, -2.0], &[2]).unwrap());
    /// let y = tape.region("square", || (&x * &x).sum());
    /// let g = y.backward();
    /// let table = tape.table().with_gradients(&g).to_string();
    /// let rows: Vec<&str> = table.lines().collect();
    /// assert!(rows[0].starts_with("node") && rows[0].contains("region"));
    /// assert!(rows[2].contains("mul") && rows[2].contains("%0, %0") && rows[2].contains("square"));
    /// assert!(rows[1].contains("4.4721")); // ‖∂y/∂x‖ = ‖2x‖ = √20
    /// ```
    pub fn table(&self) -> Table<'_, T> {
        Table {
            tape: self,
            grads: None,
        }
    }

    /// Bytes saved for backward in total, by op kind and by region.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::ones(&[8]));
    /// let y = tape.region("act", || x.tanh()); // saves its output: 8 × 4 B
    /// let _z = &y * &y; // saves both operands: 2 × 32 B
    /// let report = tape.memory_report();
    /// assert_eq!(report.total_bytes, 96);
    /// assert_eq!(report.op("tanh").unwrap().bytes, 32);
    /// assert_eq!(report.region("act").unwrap().bytes, 32);
    /// ```
    ///
    /// A [checkpointed segment](Tape::checkpoint) is one `checkpoint` node that keeps its
    /// inputs; [`MemoryReport::segments`] also gives what its own nodes would have kept:
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::ones(&[8]));
    /// let y = tape.checkpoint([&x], |[x]| x.tanh().exp()); // tanh and exp save 32 B each
    /// let report = tape.memory_report();
    /// assert_eq!(report.total_bytes, 32); // the segment's input
    /// assert_eq!(report.segments[0].saved_bytes, 32);
    /// assert_eq!(report.segments[0].avoided_bytes, 64);
    /// # let _ = y;
    /// ```
    pub fn memory_report(&self) -> MemoryReport {
        let nodes = self.nodes.borrow();
        let mut by_op: BTreeMap<&'static str, MemoryUse> = BTreeMap::new();
        let mut by_region: BTreeMap<u32, MemoryUse> = BTreeMap::new();
        let mut segments = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let bytes = node.op.saved_bytes();
            let name = node.op.name();
            if let Op::Checkpoint(segment) = &node.op {
                segments.push(SegmentUse {
                    node: i,
                    region: self.region_names_of(node.region).map(|r| r.to_string()),
                    nodes: segment.nodes,
                    saved_bytes: bytes,
                    avoided_bytes: segment.avoided_bytes,
                });
            }
            by_op
                .entry(name)
                .or_insert_with(|| MemoryUse::new(name))
                .add(bytes);
            by_region
                .entry(node.region)
                .or_insert_with(|| {
                    MemoryUse::new(
                        self.region_names_of(node.region)
                            .as_deref()
                            .unwrap_or(MemoryReport::OUTSIDE_REGIONS),
                    )
                })
                .add(bytes);
        }
        let mut by_op: Vec<MemoryUse> = by_op.into_values().collect();
        by_op.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        MemoryReport {
            total_bytes: nodes.iter().map(|n| n.op.saved_bytes()).sum(),
            nodes: nodes.len(),
            by_op,
            by_region: by_region.into_values().collect(),
            segments,
        }
    }

    /// The tape as a Graphviz DOT graph: one box per node (index, op, shape, bytes saved,
    /// and a [`ValueSummary`] when summaries are on), an edge from each input to its
    /// consumer, and one cluster per region. Render with `dot -Tsvg tape.dot > tape.svg`.
    ///
    /// ```
    /// use autograd::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[3]));
    /// let _y = (&x * &x).sum();
    /// let dot = tape.to_dot();
    /// assert!(dot.starts_with("digraph tape {") && dot.trim_end().ends_with('}'));
    /// assert!(dot.contains("n0 -> n1") && dot.contains("n1 -> n2"));
    /// ```
    pub fn to_dot(&self) -> String {
        self.dot(None)
    }

    /// [`Tape::to_dot`] after backward: each node also shows the norm of its gradient, and
    /// nodes the output depends on are filled.
    pub fn to_dot_with(&self, grads: &Gradients<T>) -> String {
        self.dot(Some(grads))
    }

    fn dot(&self, grads: Option<&Gradients<T>>) -> String {
        let nodes = self.nodes.borrow();
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.region_names.borrow().len() + 1];
        for (i, node) in nodes.iter().enumerate() {
            members[node.region as usize].push(i);
        }
        let names = self.region_names.borrow();
        let label_of = |name: &str| names.iter().position(|n| n == name).map_or(0, |k| k + 1);
        let parents: Vec<u32> = std::iter::once(0)
            .chain(names.iter().map(|n| {
                n.rsplit_once('/')
                    .map_or(0, |(parent, _)| label_of(parent) as u32)
            }))
            .collect();
        drop(names);
        let mut out = String::from("digraph tape {\n");
        out.push_str(
            "  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", fontsize=10];\n",
        );
        out.push_str("  edge [color=\"#555555\", arrowsize=0.7];\n");
        self.dot_region(&mut out, 0, (&members, &parents), grads);
        for i in 0..nodes.len() {
            for &input in nodes.inputs(i).iter().flatten() {
                // Writing into a String cannot fail.
                let _ = writeln!(out, "  n{input} -> n{i};");
            }
        }
        out.push_str("}\n");
        out
    }

    /// Writes the nodes of region `label`, then its nested regions as nested clusters.
    /// `parents[k]` is the label of the region that region `k` is nested in. Recursion depth
    /// is the nesting depth of the user's regions.
    fn dot_region(
        &self,
        out: &mut String,
        label: u32,
        (members, parents): (&[Vec<usize>], &[u32]),
        grads: Option<&Gradients<T>>,
    ) {
        if let Some(full) = self.region_names_of(label) {
            let short = full.rsplit('/').next().unwrap_or(&full);
            let _ = writeln!(
                out,
                "subgraph cluster_{label} {{ label=\"{}\"; style=\"rounded,dashed\"; color=\"#888888\"; fontname=\"Helvetica\";",
                escape(short)
            );
        }
        for &i in &members[label as usize] {
            out.push_str(&self.dot_node(i, grads));
        }
        for child in (1..parents.len()).filter(|&k| parents[k] == label) {
            self.dot_region(out, child as u32, (members, parents), grads);
        }
        if label != 0 {
            out.push_str("}\n");
        }
    }

    /// One node's line: index, op, shape, saved bytes, constants, summary, gradient norm.
    fn dot_node(&self, i: usize, grads: Option<&Gradients<T>>) -> String {
        let nodes = self.nodes.borrow();
        let node = &nodes[i];
        let mut label = format!("%{i} {}\\n{:?}", node.op.name(), nodes.shape(i));
        let saved = node.op.saved_bytes();
        if saved > 0 {
            let _ = write!(label, "\\nsaved {}", human_bytes(saved));
        }
        let constants = nodes.inputs(i).iter().filter(|i| i.is_none()).count();
        if constants > 0 {
            let _ = write!(label, "\\n+{constants} const");
        }
        if let Some(s) = self.value_summary(i) {
            let _ = write!(label, "\\n{s}");
        }
        let mut attrs = String::new();
        match grads.map(|g| g.by_id(i)) {
            Some(Some(g)) => {
                let _ = write!(label, "\\n‖grad‖ {}", number(g.norm()));
                attrs.push_str(", fillcolor=\"#dbe9f6\"");
            }
            Some(None) => attrs.push_str(", fontcolor=\"#888888\""),
            None => {}
        }
        if nodes.inputs(i).is_empty() {
            attrs.push_str(", shape=ellipse");
        }
        format!(
            "  n{i} [label=\"{}\", tooltip=\"{}\"{attrs}];\n",
            escape_label(&label),
            escape(&node.at.to_string())
        )
    }
}

/// Escapes a DOT string: quotes and backslashes.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Escapes a DOT label that already uses `\n` for its line breaks: quotes only.
fn escape_label(s: &str) -> String {
    s.replace('"', "\\\"")
}

impl<T: Element> fmt::Display for Table<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tape = self.tape;
        let nodes = tape.nodes.borrow();
        let with_region = nodes.iter().any(|n| n.region != 0);
        let with_values = (0..nodes.len()).any(|i| tape.value_summary(i).is_some());
        let mut header = vec!["node", "op", "inputs", "shape", "saved B"];
        with_region.then(|| header.push("region"));
        with_values.then(|| header.push("value"));
        self.grads.is_some().then(|| header.push("‖grad‖"));
        header.push("recorded at");
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for (i, n) in nodes.iter().enumerate() {
            let inputs: Vec<String> = nodes
                .inputs(i)
                .iter()
                .map(|id| id.map_or_else(|| "const".to_string(), |id| format!("%{id}")))
                .collect();
            let mut row = vec![
                format!("%{i}"),
                n.op.name().to_string(),
                inputs.join(", "),
                format!("{:?}", nodes.shape(i)),
                n.op.saved_bytes().to_string(),
            ];
            if with_region {
                row.push(
                    tape.region_names_of(n.region)
                        .map_or(String::new(), |r| r.to_string()),
                );
            }
            if with_values {
                row.push(
                    tape.value_summary(i)
                        .map_or(String::new(), |s| s.to_string()),
                );
            }
            if let Some(g) = self.grads {
                row.push(g.by_id(i).map_or(String::new(), |g| number(g.norm())));
            }
            row.push(n.at.to_string());
            rows.push(row);
        }
        let numeric = |h: &str| matches!(h, "saved B" | "‖grad‖" | "node");
        write_columns(f, &rows, |c| numeric(header[c]))
    }
}

/// The table, as `Tape`'s `Display`.
impl<T: Element> fmt::Display for Tape<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table().fmt(f)
    }
}

/// Writes rows as aligned columns, two spaces apart; `right(c)` right-aligns column `c`.
/// The last column is not padded.
fn write_columns(
    f: &mut fmt::Formatter<'_>,
    rows: &[Vec<String>],
    right: impl Fn(usize) -> bool,
) -> fmt::Result {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c > 0 {
                line.push_str("  ");
            }
            if right(c) {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if c + 1 < columns {
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(f, "{line}")?;
    }
    Ok(())
}

/// Bytes saved for backward by a group of nodes (an op kind or a region).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// The op's name or the region's full name.
    pub name: String,
    /// Number of nodes in the group.
    pub nodes: usize,
    /// Bytes their saved tensors keep alive.
    pub bytes: usize,
}

impl MemoryUse {
    fn new(name: &str) -> Self {
        MemoryUse {
            name: name.to_string(),
            nodes: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, bytes: usize) {
        self.nodes += 1;
        self.bytes += bytes;
    }
}

/// What a tape keeps alive for backward (see [`Tape::memory_report`]). A tensor saved by
/// two nodes counts twice, as in [`Tape::saved_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Bytes saved by every node.
    pub total_bytes: usize,
    /// Number of nodes on the tape.
    pub nodes: usize,
    /// Per op kind, largest first.
    pub by_op: Vec<MemoryUse>,
    /// Per region (innermost full name, e.g. `"stage2/block3"`), nodes outside every
    /// region first under [`MemoryReport::OUTSIDE_REGIONS`], then in the order the regions
    /// were first entered. The entries sum to the total.
    pub by_region: Vec<MemoryUse>,
    /// The [checkpointed segments](Tape::checkpoint), in tape order.
    pub segments: Vec<SegmentUse>,
}

/// One checkpointed segment in a [`MemoryReport`]: what its node keeps, against what its
/// own nodes would have kept had it not been checkpointed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentUse {
    /// The segment's node on the tape.
    pub node: usize,
    /// The region it was recorded in (full name), if any.
    pub region: Option<String>,
    /// Nodes its forward pass recorded (on a scratch tape, freed once its output was known).
    pub nodes: usize,
    /// Bytes the segment's node keeps for backward: its inputs (part of the report's total).
    pub saved_bytes: usize,
    /// Bytes its nodes saved for backward in the forward pass and that the tape does not
    /// keep (they are recomputed in backward). Segments nested inside count as the inputs
    /// they keep.
    pub avoided_bytes: usize,
}

impl MemoryReport {
    /// The name under which nodes recorded outside every region are reported.
    pub const OUTSIDE_REGIONS: &'static str = "(outside regions)";

    /// The entry of one op kind, e.g. `"linear"`.
    pub fn op(&self, name: &str) -> Option<&MemoryUse> {
        self.by_op.iter().find(|u| u.name == name)
    }

    /// The entry of one region, by full name (its own nodes, not nested regions').
    pub fn region(&self, name: &str) -> Option<&MemoryUse> {
        self.by_region.iter().find(|u| u.name == name)
    }

    /// Bytes the checkpointed segments do not keep: the sum of their
    /// [`SegmentUse::avoided_bytes`].
    pub fn avoided_bytes(&self) -> usize {
        self.segments.iter().map(|s| s.avoided_bytes).sum()
    }

    /// A region and every region nested in it, added up: `"stage2"` covers
    /// `"stage2"`, `"stage2/block1"`, `"stage2/block2"`, ….
    pub fn region_inclusive(&self, name: &str) -> MemoryUse {
        let mut total = MemoryUse::new(name);
        let nested = format!("{name}/");
        for u in &self.by_region {
            if u.name == name || u.name.starts_with(&nested) {
                total.nodes += u.nodes;
                total.bytes += u.bytes;
            }
        }
        total
    }
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "saved for backward: {} ({} B) in {} nodes",
            human_bytes(self.total_bytes),
            self.total_bytes,
            self.nodes
        )?;
        for (title, uses) in [("op", &self.by_op), ("region", &self.by_region)] {
            let mut rows = vec![vec![
                format!("by {title}"),
                "nodes".into(),
                "bytes".into(),
                "share".into(),
            ]];
            for u in uses.iter() {
                let share = 100.0 * u.bytes as f64 / self.total_bytes.max(1) as f64;
                rows.push(vec![
                    format!("  {}", u.name),
                    u.nodes.to_string(),
                    human_bytes(u.bytes),
                    format!("{share:.1}%"),
                ]);
            }
            write_columns(f, &rows, |c| c > 0)?;
        }
        self.fmt_segments(f)
    }
}

impl MemoryReport {
    /// Segments shown one per line in the report; more are summed up on one line.
    const SEGMENT_ROWS: usize = 8;

    /// The checkpointed segments: a summary line, then one row per segment.
    fn fmt_segments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return Ok(());
        }
        let kept: usize = self.segments.iter().map(|s| s.saved_bytes).sum();
        writeln!(
            f,
            "checkpointed segments: {} keep {} of inputs; their {} nodes would have kept {} \
             (recomputed in backward)",
            self.segments.len(),
            human_bytes(kept),
            self.segments.iter().map(|s| s.nodes).sum::<usize>(),
            human_bytes(self.avoided_bytes())
        )?;
        let mut rows = vec![vec![
            "  segment".to_string(),
            "region".into(),
            "nodes".into(),
            "keeps".into(),
            "avoids".into(),
        ]];
        for s in self.segments.iter().take(Self::SEGMENT_ROWS) {
            rows.push(vec![
                format!("  %{}", s.node),
                s.region.clone().unwrap_or_default(),
                s.nodes.to_string(),
                human_bytes(s.saved_bytes),
                human_bytes(s.avoided_bytes),
            ]);
        }
        write_columns(f, &rows, |c| c > 1)?;
        let rest = self.segments.len().saturating_sub(Self::SEGMENT_ROWS);
        if rest > 0 {
            writeln!(f, "  … and {rest} more")?;
        }
        Ok(())
    }
}
