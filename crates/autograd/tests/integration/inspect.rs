//! Looking inside a tape: memory accounting by op and region, the table, DOT export and
//! value summaries.

use autograd::{MemoryReport, Tape, Tensor, ValueSummary, Var, seeded_rng};

fn rand(shape: &[usize], seed: u64) -> Tensor<f32> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// The notebook's block from raw ops: relu(linear2(relu(linear1(x))) + x), in a region.
fn block<'t>(tape: &'t Tape<f32>, name: &str, x: &Var<'t, f32>, seed: u64) -> Var<'t, f32> {
    let d = x.shape()[1];
    let (w1, b1) = (
        tape.var(rand(&[d, d], seed)),
        tape.var(rand(&[d], seed + 1)),
    );
    let (w2, b2) = (
        tape.var(rand(&[d, d], seed + 2)),
        tape.var(rand(&[d], seed + 3)),
    );
    tape.region(name, || {
        let out = x.linear(&w1, Some(&b1)).relu();
        let out = out.linear(&w2, Some(&b2));
        (&out + x).relu()
    })
}

#[test]
fn memory_of_a_residual_block_is_the_sum_of_its_saved_tensors() {
    let (n, d) = (5, 7);
    let tape = Tape::<f32>::new();
    let x = tape.var(rand(&[n, d], 1));
    let _h = block(&tape, "block", &x, 2);
    // What each backward rule needs, from the shapes: a linear keeps its input [n, d] and
    // weight [d, d] (not the bias), a relu its input [n, d], the add only shapes.
    let f32_bytes = 4;
    let linear = (n * d + d * d) * f32_bytes;
    let relu = n * d * f32_bytes;
    let want = 2 * linear + 2 * relu;
    let report = tape.memory_report();
    assert_eq!(report.total_bytes, want);
    assert_eq!(tape.saved_bytes(), want);
    assert_eq!(
        report.op("linear").map(|u| (u.nodes, u.bytes)),
        Some((2, 2 * linear))
    );
    assert_eq!(
        report.op("relu").map(|u| (u.nodes, u.bytes)),
        Some((2, 2 * relu))
    );
    assert_eq!(report.op("add").map(|u| (u.nodes, u.bytes)), Some((1, 0)));
    assert_eq!(report.op("leaf").map(|u| (u.nodes, u.bytes)), Some((5, 0)));
    // Everything saved was recorded inside the region; the leaves outside save nothing.
    assert_eq!(
        report.region("block").map(|u| (u.nodes, u.bytes)),
        Some((5, want))
    );
    let outside = report.region(MemoryReport::OUTSIDE_REGIONS).unwrap();
    assert_eq!((outside.nodes, outside.bytes), (5, 0));
    assert_eq!(report.nodes, tape.len());
}

#[test]
fn region_totals_and_op_totals_each_sum_to_the_total() {
    let tape = Tape::<f32>::new();
    let x = tape.var(rand(&[3, 6], 10));
    let mut h = x.clone();
    tape.region("stage1", || {
        for k in 0..2 {
            h = block(&tape, &format!("block{k}"), &h, 20 + 4 * k as u64);
        }
    });
    let h = tape.region("stage2", || block(&tape, "block0", &h, 40).sigmoid());
    let _loss = tape.region("loss", || (&h * &h).mean());
    let report = tape.memory_report();
    let names: Vec<&str> = report.by_region.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            MemoryReport::OUTSIDE_REGIONS,
            "stage1", // the blocks' parameters, created inside stage1 but outside the blocks
            "stage1/block0",
            "stage1/block1",
            "stage2",
            "stage2/block0",
            "loss"
        ]
    );
    let sum = |uses: &[autograd::MemoryUse]| -> (usize, usize) {
        uses.iter()
            .fold((0, 0), |(n, b), u| (n + u.nodes, b + u.bytes))
    };
    assert_eq!(sum(&report.by_region), (tape.len(), report.total_bytes));
    assert_eq!(sum(&report.by_op), (tape.len(), report.total_bytes));
    // Nested regions add up under their parent; the three blocks are alike.
    let block_bytes = report.region("stage1/block0").unwrap().bytes;
    assert_eq!(report.region("stage1/block1").unwrap().bytes, block_bytes);
    assert_eq!(report.region("stage1").unwrap().bytes, 0);
    assert_eq!(report.region_inclusive("stage1").bytes, 2 * block_bytes);
    let sigmoid = 3 * 6 * 4; // saves its output
    assert_eq!(report.region("stage2").unwrap().bytes, sigmoid);
    assert_eq!(
        report.region_inclusive("stage2").bytes,
        block_bytes + sigmoid
    );
    // The printed report names every op and region.
    let text = report.to_string();
    for u in report.by_op.iter().chain(&report.by_region) {
        assert!(text.contains(&u.name), "{} missing from\n{text}", u.name);
    }
}

#[test]
fn regions_label_nodes_and_end_even_on_panic() {
    let tape = Tape::<f32>::new();
    let x = tape.var(rand(&[2], 50));
    let inner = tape.region("outer", || tape.region("inner", || x.exp()));
    assert_eq!(
        tape.region_name(inner.node_id().unwrap()).as_deref(),
        Some("outer/inner")
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.region("doomed", || -> Var<'_, f32> { panic!("inside a region") })
    }));
    assert!(caught.is_err());
    let after = x.tanh();
    assert_eq!(tape.region_name(after.node_id().unwrap()), None);
    assert_eq!(tape.region_name(99), None);
}

#[test]
fn the_table_has_one_row_per_node_and_optional_columns() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::scalar(2.0));
    let b = tape.var(Tensor::scalar(3.0));
    let y = &(&a + &b) * &a;
    let plain = tape.to_string();
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), tape.len() + 1);
    assert!(!lines[0].contains("region") && !lines[0].contains("value"));
    assert!(lines[3].contains("add") && lines[3].contains("%0, %1"));
    assert!(lines[4].contains("mul") && lines[4].contains("%2, %0"));
    assert!(lines[4].contains("inspect.rs"));

    let g = y.backward();
    let with_grads = tape.table().with_gradients(&g).to_string();
    let header = with_grads.lines().next().unwrap();
    assert!(header.contains("‖grad‖"));
    // ∂y/∂a = 2a + b = 7 and ∂y/∂b = a = 2, printed in the rows of a and b.
    let rows: Vec<&str> = with_grads.lines().collect();
    assert!(rows[1].split_whitespace().any(|c| c == "7"), "{}", rows[1]);
    assert!(rows[2].split_whitespace().any(|c| c == "2"), "{}", rows[2]);
}

#[test]
fn value_summaries_describe_each_recorded_value() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![-1.0, 0.5, 2.0, f64::NAN], &[4]).unwrap());
    assert_eq!(tape.value_summary(0), None, "off by default");
    tape.set_value_summaries(true);
    let y = &x * 2.0;
    let s: ValueSummary<f64> = tape.value_summary(y.node_id().unwrap()).unwrap();
    assert_eq!((s.min, s.max, s.mean, s.nan), (-2.0, 4.0, 1.0, 1));
    assert!(!s.is_finite());
    let z = (&y / 0.0).sum(); // ±inf and NaN
    let table = tape.to_string();
    assert!(table.lines().next().unwrap().contains("value"));
    assert!(table.contains("min -2 mean 1 max 4"), "{table}");
    let s = tape.value_summary(z.node_id().unwrap() - 1).unwrap();
    assert_eq!((s.pos_inf, s.neg_inf, s.nan), (2, 1, 1));
}

#[test]
fn dot_export_has_every_node_every_edge_and_a_cluster_per_region() {
    let tape = Tape::<f32>::new();
    let x = tape.var(rand(&[2, 4], 60));
    let h = block(&tape, "block \"1\"", &x, 61);
    let loss = (&h * 0.5).sum();
    let grads = loss.backward();
    let _unused = x.exp(); // no gradient
    for dot in [tape.to_dot(), tape.to_dot_with(&grads)] {
        assert!(dot.starts_with("digraph tape {\n") && dot.ends_with("}\n"));
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
        let nodes = tape.len();
        for i in 0..nodes {
            assert_eq!(
                dot.matches(&format!("\n  n{i} [label=\"%{i} ")).count(),
                1,
                "n{i}"
            );
        }
        // One edge per tracked input of every node: linear (x, w1, b1), relu, linear, add
        // (branch, x), relu, then mul_scalar, sum and the unused exp.
        let edges = dot.lines().filter(|l| l.contains(" -> ")).count();
        assert_eq!(edges, 3 + 1 + 3 + 2 + 1 + 1 + 1 + 1);
        assert!(dot.contains(&format!(
            "n{} -> n{};",
            x.node_id().unwrap(),
            h.node_id().unwrap() - 1
        )));
        assert!(dot.contains("subgraph cluster_1 { label=\"block \\\"1\\\"\";"));
        // Every statement is terminated.
        for line in dot.lines().skip(1) {
            let l = line.trim_end();
            assert!(l.ends_with(';') || l.ends_with('{') || l == "}", "{l}");
        }
    }
    let with = tape.to_dot_with(&grads);
    // Gradient norms on the nodes the loss depends on: all but the unused exp.
    assert_eq!(with.matches("‖grad‖").count(), tape.len() - 1);
    let root = format!("‖grad‖ {}", 1);
    assert!(with.contains(&root));
}
