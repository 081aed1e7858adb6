//! Smoke tests of the tutorial: every chapter's computation at its smoke sizes, with the
//! qualitative result the chapter's prose states.

use wengert::tutorial::{self, Progress, Size};

fn quiet() -> Progress {
    Progress::silent()
}

#[test]
fn ch01_the_tape_sums_both_contributions_to_a() {
    let c = tutorial::ch01_tape::Config::smoke();
    let r = tutorial::ch01_tape::run(&c, &quiet());
    assert_eq!(r.y, (c.a + c.b) * c.a);
    assert_eq!(r.grad_a, 2.0 * c.a + c.b);
    assert_eq!(r.grad_b, c.a);
    assert!(r.scalar_listing.contains("add") && r.scalar_listing.contains("mul"));
    // The sweep visits every node once, from the output down; two contributions reach `a`.
    let nodes: Vec<usize> = r.scalar_steps.iter().map(|s| s.node).collect();
    assert_eq!(nodes, vec![3, 2, 1, 0]);
    let parts: f64 = r.arrivals_a.iter().map(|c| c.tensor.item()).sum();
    assert_eq!(r.arrivals_a.len(), 2);
    assert_eq!(parts, r.grad_a);
    // The block: x receives d through the skip (from the add) and dR through the branch.
    assert!(r.block_listing.contains("linear") && r.block_listing.contains("add"));
    let ops: Vec<&str> = r.arrivals_x.iter().map(|c| c.op).collect();
    assert_eq!(ops, vec!["add", "linear"]);
    assert!(r.x_sum_error() < 1e-12);
    assert!(r.block_edges.contains(&(
        r.x_node,
        r.block_ops.iter().position(|&o| o == "add").unwrap()
    )));
}

#[test]
fn ch02_plain_deep_sigmoid_gradients_vanish_and_he_keeps_relu_even() {
    use tutorial::ch02_depth::{Config, Remedy, run};
    use wengert::nn::Activation;
    let r = run(&Config::smoke(), &quiet());
    let deep = r.deepest();
    let shallow = *r.config.depths.iter().min().unwrap();
    let sigmoid = r
        .get(Activation::Sigmoid, Remedy::Scaled, deep)
        .profile
        .first_over_last();
    // Each sigmoid layer shrinks the gradient by at least 4: after 30 layers, far below 1e-6.
    assert!(sigmoid < 1e-6, "sigmoid first/last {sigmoid}");
    let sigmoid_shallow = r
        .get(Activation::Sigmoid, Remedy::Scaled, shallow)
        .profile
        .first_over_last();
    assert!(sigmoid < sigmoid_shallow, "vanishing grows with depth");
    // He-initialised ReLU: the first and last layers' gradients within two decades.
    let relu = r
        .get(Activation::Relu, Remedy::Scaled, deep)
        .profile
        .first_over_last();
    assert!((1e-2..1e2).contains(&relu), "ReLU He first/last {relu}");
    // The naive N(0, 1) start explodes ReLU's forward signal.
    let rms = *r
        .get(Activation::Relu, Remedy::Naive, deep)
        .profile
        .state_rms
        .last()
        .unwrap();
    assert!(rms > 1e10, "naive ReLU rms {rms}");
    assert_eq!(r.page().figures().count(), 1);
}

#[test]
fn ch04_scaled_residual_gradients_stay_within_an_order_of_magnitude() {
    use tutorial::ch04_shortcuts::{Config, Start, run};
    let r = run(&Config::smoke(), &quiet());
    for &depth in &r.config.depths {
        for start in [Start::ScaledBranch, Start::ZeroInitLast] {
            let spread = r.get(start, depth).profile.spread();
            assert!(
                spread < 10.0,
                "{start:?} at depth {depth}: max/min {spread}"
            );
        }
    }
    // The notebook's block stacked as it is blows up with depth.
    let deep = r.deepest();
    let blown = *r
        .get(Start::Notebook, deep)
        .profile
        .state_rms
        .last()
        .unwrap();
    let scaled = *r
        .get(Start::ScaledBranch, deep)
        .profile
        .state_rms
        .last()
        .unwrap();
    assert!(
        blown > 1e3 * scaled,
        "notebook rms {blown} vs scaled {scaled}"
    );
}

#[test]
fn ch05_plain_nets_degrade_with_depth_residual_nets_do_not() {
    use tutorial::ch05_degradation::{Config, Kind, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    let (shallow, deep) = (c.depths[0], c.depths[1]);
    let plain = (
        r.final_loss(Kind::Plain, shallow),
        r.final_loss(Kind::Plain, deep),
    );
    let residual = (
        r.final_loss(Kind::Residual, shallow),
        r.final_loss(Kind::Residual, deep),
    );
    // Degradation: the deeper plain net ends with a higher training loss, by a wide margin
    // (it stays near the chance level ln 2 while the shallow one fits).
    assert!(plain.1 > plain.0 + 0.2, "plain {plain:?}");
    // The deeper residual net is not worse: within 0.05 nats of the shallow one, which is
    // under a tenth of the chance level ln 2 ≈ 0.69 (the median over three seeds).
    assert!(residual.1 <= residual.0 + 0.05, "residual {residual:?}");
}

#[test]
fn the_tour_lists_every_chapter_in_order_and_pages_render() {
    let chapters = tutorial::chapters();
    let numbers: Vec<usize> = chapters.iter().map(|c| c.number).collect();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    for chapter in &chapters {
        assert!(chapter.slug.starts_with(&format!("{:02}_", chapter.number)));
    }
    // The cheap chapters run whole; their pages render as text and as Markdown.
    for chapter in chapters.iter().filter(|c| [1, 2, 4].contains(&c.number)) {
        let page = (chapter.page)(Size::Smoke, &quiet());
        assert_eq!(page.number, chapter.number);
        let text = page.to_text("figures");
        assert!(text.contains(chapter.title), "{text}");
        let markdown = page.to_markdown("figures");
        assert!(markdown.starts_with(&format!("# Chapter {}", chapter.number)));
        for figure in page.figures() {
            let svg = figure.to_svg().unwrap();
            // Text is escaped for XML (an apostrophe becomes &apos;).
            let title = figure.panels[0].title.replace('\'', "&apos;");
            assert!(svg.starts_with("<svg") && svg.contains(&title), "{title}");
        }
    }
}

#[test]
fn ch09_stochastic_depth_narrows_the_generalisation_gap() {
    use tutorial::ch09_variants::{Config, Design, run};
    let r = run(&Config::smoke(), &quiet());
    for design in Design::ALL {
        let (without, with) = (r.get(design, false), r.get(design, true));
        // Without it, the deep net memorises the noisy training set…
        assert!(
            without.train.loss < 0.05,
            "{design:?}: train loss {}",
            without.train.loss
        );
        assert!(without.gap() > 0.2, "{design:?}: gap {}", without.gap());
        // … and stochastic depth shrinks the test-minus-train gap.
        assert!(
            with.gap() < without.gap(),
            "{design:?}: {} vs {}",
            with.gap(),
            without.gap()
        );
    }
}

#[test]
fn ch03_tape_and_manual_backward_agree_and_the_skip_keeps_the_gradient() {
    use tutorial::ch03_block::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    assert!(r.report.passed(1e-12), "{}", r.report);
    // d and dR are the notebook's variables, on both sides, and they sum to ∂L/∂x.
    assert!(r.tape.d.max_abs_diff(&r.manual.d) < 1e-12);
    assert!(r.tape.d_r.max_abs_diff(&r.manual.d_r) < 1e-12);
    assert!((&r.tape.d + &r.tape.d_r).max_abs_diff(&r.tape.dx) < 1e-12);
    // Shrinking the branch by 1e-4 shrinks dR by about 1e-8 but leaves ∂L/∂x at the size
    // of d; without the skip the input gradient vanishes with the branch.
    let (first, last) = (&r.scaled[0], r.scaled.last().unwrap());
    assert!(last.d_r < 1e-6 * first.d_r);
    assert!((last.dx - last.d).abs() < 1e-6 * last.d);
    assert!(last.dx > 0.1 * first.dx);
    assert!(last.dx_without_skip < 1e-6 * first.dx_without_skip);
}

#[test]
fn ch06_paths_add_up_and_a_residual_lesion_costs_less_than_a_plain_one() {
    use tutorial::ch06_unraveled::{Config, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    for paths in [&r.paths_at_init, &r.paths_trained] {
        assert_eq!(paths.norms.len(), c.depth + 1);
        assert_eq!(paths.counts.iter().sum::<f64>(), 2f64.powi(c.depth as i32));
        assert!(
            paths.sum_error <= 1e-9 * paths.total,
            "{} vs {}",
            paths.sum_error,
            paths.total
        );
    }
    // At initialisation short paths carry the gradient, not the most numerous ones, and
    // per path the gradient falls with length.
    assert!(r.paths_at_init.peak() < c.depth / 2);
    let per_path = r.paths_at_init.per_path();
    assert!(per_path[c.depth] < 1e-2 * per_path[0], "{per_path:?}");
    // Veit et al.'s single lesion: the median cost of deleting one residual block is far
    // below that of deleting one plain layer (both networks fit the training set first).
    assert!(r.residual.intact.loss < 0.05 && r.plain.intact.loss < 0.05);
    let (res, plain) = (
        r.residual.median_single_increase(),
        r.plain.median_single_increase(),
    );
    assert!(res < 0.5 * plain, "residual {res} vs plain {plain}");
}

#[test]
fn ch10_tape_and_manual_training_steps_agree() {
    use tutorial::ch10_manual::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    for c in &r.sizes {
        // Same kernels, same operands: the gradients agree to f32 rounding at worst.
        assert!(c.max_rel_grad < 1e-5, "{}: {}", c.size.name, c.max_rel_grad);
        assert!(c.lockstep_param_rel < 1e-5 && c.lockstep_rel < 1e-4);
        assert!(c.tape_saved > 0 && c.autograd_seconds > 0.0 && c.manual_seconds > 0.0);
        // The tests do not install the counting allocator: memory is not measured here.
        assert_eq!(c.autograd_peak, None);
    }
}

#[test]
fn ch08_a_skip_connection_saves_nothing_on_the_tape() {
    use tutorial::ch08_cost::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    for c in &r.sizes {
        assert_eq!(c.residual_tape.total, c.plain_tape.total);
        assert_eq!(c.residual_tape.per_block, c.plain_tape.per_block);
        let add = c.residual_tape.by_op.iter().find(|(op, _, _)| op == "add");
        assert_eq!(
            add.map(|(_, nodes, bytes)| (*nodes, *bytes)),
            Some((c.size.blocks, 0))
        );
        assert!(c.plain_tape.by_op.iter().all(|(op, _, _)| op != "add"));
    }
}

#[test]
fn ch07_mismatched_shapes_are_refused_and_projections_fix_them() {
    use tutorial::ch07_shapes::{Config, Cut, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    // The add of a widened branch and its input is refused with both shapes named.
    assert!(r.mismatch_error.contains("add") && r.mismatch_error.contains("[4, 32]"));
    assert!(r.lone_cut_error.contains("add"), "{}", r.lone_cut_error);
    // The Linear projection's tape gradients match the hand-written backward.
    assert!(r.linear_projection_max_rel < 1e-12);
    // The image block halves the resolution and doubles the channels; both paths carry
    // gradient back to x.
    assert_eq!(r.conv_block.1, vec![2, 16, 8, 8]);
    assert!(r.conv_shares.0 > 0.0 && r.conv_shares.1 > 0.0);
    // Pruning: fewer parameters the narrower the cut; unpruned = kept at full width.
    for cut in [Cut::Hourglass, Cut::Stream] {
        let nets = r.cut(cut);
        assert!(nets.windows(2).all(|w| w[1].parameters < w[0].parameters));
        assert_eq!(nets[0].parameters, r.unpruned_parameters);
    }
    // At equal width, hourglass pruning keeps more parameters than cutting the stream.
    let (h, s) = (r.cut(Cut::Hourglass), r.cut(Cut::Stream));
    assert!(h.last().unwrap().parameters > s.last().unwrap().parameters);
}
