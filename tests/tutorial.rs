//! Smoke tests of the tutorial: every chapter's computation at its smoke sizes, with the
//! qualitative result the chapter's page states, and its page laid out with every code cell
//! present.

use wengert::tutorial::page::Page;
use wengert::tutorial::{self, Progress, Size, Source};

fn quiet() -> Progress {
    Progress::silent()
}

/// The page has at least `cells` non-empty code cells, at least one figure that renders,
/// takeaways and claims, and renders as text and as Markdown.
fn check_page(page: &Page, cells: usize) {
    let found: Vec<_> = page.cells().collect();
    assert!(
        found.len() >= cells,
        "chapter {}: {} cells",
        page.number,
        found.len()
    );
    for cell in &found {
        assert!(!cell.code.trim().is_empty(), "cell {} is empty", cell.name);
    }
    assert!(
        page.figures().count() >= 1,
        "chapter {} has no figure",
        page.number
    );
    for figure in page.figures() {
        let svg = figure.to_svg().unwrap();
        let title = figure.panels[0].title.replace('\'', "&apos;");
        assert!(svg.starts_with("<svg") && svg.contains(&title), "{title}");
    }
    assert!(
        !page.claims.is_empty(),
        "chapter {} tests no claim",
        page.number
    );
    let markdown = page.to_markdown("figures", "../..");
    assert!(markdown.contains("## Takeaways") && markdown.contains("```rust"));
    assert!(markdown.contains("> **Block used here:**"));
    let text = page.to_text("figures");
    assert!(text.contains("In [") && text.contains(&page.title));
}

#[test]
fn every_cell_marker_is_closed_named_once_and_not_empty() {
    let mut sources: Vec<Source> = tutorial::chapters().iter().map(|c| c.source).collect();
    sources.extend([
        tutorial::training::SOURCE,
        tutorial::memory::SOURCE,
        tutorial::ch10_manual::WORKLOADS,
        tutorial::ch08_cost::CHECKPOINT_COST,
    ]);
    for source in sources {
        let cells = source.cells().unwrap_or_else(|e| panic!("{e}"));
        assert!(!cells.is_empty(), "{} has no cell", source.path);
        for cell in cells {
            assert!(!cell.code.trim().is_empty());
            // The line numbers point at the cell's code in the file.
            let first = source.text.lines().nth(cell.first_line - 1).unwrap();
            assert_eq!(first.trim(), cell.code.lines().next().unwrap().trim());
        }
    }
}

#[test]
fn the_tour_lists_every_chapter_in_order() {
    let chapters = tutorial::chapters();
    let numbers: Vec<usize> = chapters.iter().map(|c| c.number).collect();
    assert_eq!(numbers, (1..=11).collect::<Vec<_>>());
    for chapter in &chapters {
        assert!(chapter.slug.starts_with(&format!("{:02}_", chapter.number)));
        assert!(chapter.source.path.ends_with(".rs"));
    }
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
    check_page(&r.page(), 3);
}

#[test]
fn ch02_plain_deep_sigmoid_gradients_vanish_and_he_keeps_relu_even() {
    use tutorial::ch02_depth::{Config, Remedy, run};
    use wengert::nn::Activation;
    let r = run(&Config::smoke(), &quiet());
    let deep = r.deepest();
    let sigmoid = r
        .get(Activation::Sigmoid, Remedy::Scaled, deep)
        .profile
        .first_over_last();
    // Each sigmoid layer shrinks the gradient by at least 4: after 30 layers, far below 1e-6.
    assert!(sigmoid < 1e-6, "sigmoid first/last {sigmoid}");
    let relu = r
        .get(Activation::Relu, Remedy::Scaled, deep)
        .profile
        .first_over_last();
    assert!((1e-2..1e2).contains(&relu), "ReLU He first/last {relu}");
    let rms = *r
        .get(Activation::Relu, Remedy::Naive, deep)
        .profile
        .state_rms
        .last()
        .unwrap();
    assert!(rms > 1e10, "naive ReLU rms {rms}");
    check_page(&r.page(), 3);
}

#[test]
fn ch03_tape_and_manual_backward_agree_and_the_skip_keeps_the_gradient() {
    use tutorial::ch03_block::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    assert!(r.report.passed(1e-12), "{}", r.report);
    // The notebook's forward, written out, is the library's block; its last op is a ReLU.
    assert_eq!(r.forward_difference, 0.0);
    assert_eq!(r.forward_ops.last(), Some(&"relu"));
    assert!(r.min_output >= 0.0);
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
    check_page(&r.page(), 4);
}

#[test]
fn ch04_the_identity_skip_is_a_highway_and_sigma_on_the_skip_is_not() {
    use tutorial::ch04_shortcuts::{BranchScale, Config, Form, run};
    use wengert::nn::Activation;
    let r = run(&Config::smoke(), &quiet());
    assert_eq!(r.deepest(), 100);
    let ratio = |f, s| r.get(Activation::Sigmoid, f, s, 100).flow.first_over_last();
    // At depth 100 the plain sigmoid chain's first-layer gradient ratio is below 1e-20, the
    // notebook's σ(F(x) + x) with sigmoid is no better, the identity skip stays above 1e-3.
    assert!(ratio(Form::Plain, BranchScale::One) < 1e-20);
    assert!(ratio(Form::PostSum, BranchScale::InvSqrtDepth) < 1e-20);
    for scale in [BranchScale::InvSqrtDepth, BranchScale::One] {
        let skip = ratio(Form::IdentitySkip, scale);
        assert!(skip > 1e-3 && skip < 1e3, "identity skip {scale:?}: {skip}");
    }
    // λ·h + F(h): the gradient ratio follows λ^L within two decades, and λ = 1 stays O(1).
    for run in &r.lambdas {
        let off = (run.ratio / run.predicted()).log10().abs();
        assert!(
            off < 2.0,
            "λ = {} at {}: {} vs {}",
            run.lambda,
            run.depth,
            run.ratio,
            run.predicted()
        );
        if run.lambda == 1.0 {
            assert!((0.1..10.0).contains(&run.ratio));
        }
    }
    check_page(&r.page(), 5);
}

#[test]
fn ch05_the_identity_is_easy_and_plain_nets_degrade_with_depth_residual_nets_do_not() {
    use tutorial::ch05_degradation::{Config, Family, Start, Target, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    let deepest_id = *c.identity_depths.iter().max().unwrap();
    for run in r.identity_of(Target::Identity, Start::ResidualZero, deepest_id) {
        assert_eq!(run.steps_to_threshold, Some(0), "F = 0 is the identity");
    }
    for run in r.identity_of(Target::Identity, Start::PlainHe, deepest_id) {
        assert!(
            run.steps_to_threshold.is_none_or(|s| s > 20),
            "{:?}",
            run.steps_to_threshold
        );
    }
    let (shallow, deep) = (c.layers[0], c.layers[1]);
    let norm = (
        r.best(Family::PlainNorm, shallow).median,
        r.best(Family::PlainNorm, deep).median,
    );
    let res = (
        r.best(Family::Residual, shallow).median,
        r.best(Family::Residual, deep).median,
    );
    // Degradation: the deeper batch-normalised plain net ends with a much higher training
    // loss, with no dead units; the deeper residual net is no worse than the shallow one.
    assert!(norm.1 > norm.0 + 0.2, "plain + batch norm {norm:?}");
    assert!(r.dead_share(Family::PlainNorm, deep) < 0.05);
    assert!(res.1 <= res.0 + 0.05, "residual {res:?}");
    assert!(r.degrades(Family::PlainNorm) && !r.degrades(Family::Residual));
    check_page(&r.page(), 7);
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
        // Lengths 0 and k hold one path each: the sampled path is the bucket itself.
        for j in [0, c.depth] {
            let (sampled, bucket) = (paths.sampled_per_path[j], paths.norms[j]);
            assert!(
                (sampled - bucket).abs() <= 1e-9 * bucket,
                "j = {j}: {sampled} vs {bucket}"
            );
        }
    }
    // At initialisation short paths carry the gradient, not the most numerous ones.
    assert!(r.paths_at_init.peak() < c.depth / 2);
    // Veit et al.'s single lesion: the median cost of deleting one residual block is far
    // below that of deleting one plain layer (both networks fit the training set first).
    assert!(r.residual.intact.loss < 0.05 && r.plain.intact.loss < 0.05);
    let (res, plain) = (r.residual.single_summary(), r.plain.single_summary());
    assert!(
        res.median_accuracy > plain.median_accuracy + 0.1,
        "{res:?} vs {plain:?}"
    );
    assert_eq!(r.fields.len(), 4);
    check_page(&r.page(), 3);
}

#[test]
fn ch07_mismatched_shapes_are_refused_projections_fix_them_and_hourglasses_survive() {
    use tutorial::ch07_shapes::{Config, Cut, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    // The add of a widened branch and its input is refused with both shapes named.
    assert!(r.mismatch_error.contains("add") && r.mismatch_error.contains("[4, 32]"));
    assert!(r.lone_cut_error.contains("add"), "{}", r.lone_cut_error);
    assert!(r.linear_projection_max_rel < 1e-12);
    // The image block halves the resolution and doubles the channels; both paths carry
    // gradient back to x.
    assert_eq!(r.conv_block.1, vec![2, 16, 8, 8]);
    assert!(r.conv_shares.0 > 0.0 && r.conv_shares.1 > 0.0);
    // Fewer parameters the narrower the cut; at equal width hourglass pruning keeps more.
    for cut in [Cut::Hourglass, Cut::Stream] {
        let widths: Vec<usize> = c.kept.clone();
        assert!(
            widths
                .windows(2)
                .all(|w| r.parameters(cut, w[1]) < r.parameters(cut, w[0]))
        );
        assert_eq!(r.parameters(cut, c.width), r.unpruned_parameters);
    }
    let narrowest = *c.kept.iter().min().unwrap();
    assert!(r.parameters(Cut::Hourglass, narrowest) > r.parameters(Cut::Stream, narrowest));
    // Fine-tuned hourglass networks with half the hidden units keep the training set.
    assert!(r.accuracy(Cut::Hourglass, c.width / 2, true).low > 0.9);
    check_page(&r.page(), 5);
}

#[test]
fn ch08_a_skip_connection_saves_nothing_on_the_tape() {
    use tutorial::ch08_cost::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    for c in &r.sizes {
        assert_eq!(c.residual_tape.total, c.plain_tape.total);
        assert_eq!(c.residual_tape.first_block, c.plain_tape.first_block);
        // The linear nodes' saved bytes hold the two weight matrices (referenced) and more.
        assert!(c.residual_tape.first_block > c.block_weights);
        let add = c.residual_tape.by_op.iter().find(|(op, _, _)| op == "add");
        assert_eq!(
            add.map(|(_, nodes, bytes)| (*nodes, *bytes)),
            Some((c.size.blocks, 0))
        );
        assert!(c.plain_tape.by_op.iter().all(|(op, _, _)| op != "add"));
        // The tests do not install the counting allocator: memory is not measured here.
        assert_eq!(c.train_peak, (None, None));
        assert!(c.train_time.ratio().median > 0.0 && c.infer_time.ratio().median > 0.0);
    }
    check_page(&r.page(), 4);
}

#[test]
fn ch09_stochastic_depth_narrows_the_gap_and_controls_overfit_too() {
    use tutorial::ch09_variants::{Config, Design, Model, run};
    let r = run(&Config::smoke(), &quiet());
    for design in [Design::PostActivation, Design::PreActivation] {
        let without = Model::Residual {
            design,
            stochastic_depth: false,
        };
        let with = Model::Residual {
            design,
            stochastic_depth: true,
        };
        // Without it, the deep net memorises the noisy training set on every seed…
        for run in r.of(without) {
            assert!(
                run.train.loss < 0.05,
                "{design:?}: train loss {}",
                run.train.loss
            );
            assert!(run.gap() > 0.2, "{design:?}: gap {}", run.gap());
        }
        // … and stochastic depth shrinks the median test-minus-train gap.
        let gap = |m| r.stat(m, |run| run.gap()).median;
        assert!(
            gap(with) < gap(without),
            "{design:?}: {} vs {}",
            gap(with),
            gap(without)
        );
    }
    // The shallow control has the residual network's parameter count (within 3 %: its
    // width is a whole number) and overfits too.
    let residual = r.of(Model::Residual {
        design: Design::PostActivation,
        stochastic_depth: false,
    })[0]
        .parameters;
    let shallow = r.of(Model::ShallowWide)[0].parameters;
    assert!(
        (shallow as f64 / residual as f64 - 1.0).abs() < 0.03,
        "{shallow} vs {residual}"
    );
    assert!(r.stat(Model::ShallowWide, |run| run.gap()).median > 0.2);
    check_page(&r.page(), 4);
}

#[test]
fn ch10_tape_and_manual_training_steps_agree() {
    use tutorial::ch10_manual::{Config, run};
    let r = run(&Config::smoke(), &quiet());
    for c in &r.sizes {
        // Same kernels, same operands: the gradients agree to f32 rounding at worst.
        assert!(c.max_rel_grad < 1e-5, "{}: {}", c.size.name, c.max_rel_grad);
        assert!(c.lockstep_param_rel < 1e-5 && c.lockstep_rel < 1e-4);
        assert!(c.tape_saved > 0 && c.autograd_seconds() > 0.0 && c.manual_seconds() > 0.0);
        assert_eq!(c.autograd_peak, None);
    }
    check_page(&r.page(), 4);
}

#[test]
fn ch11_the_residual_conv_net_reads_digits_far_above_chance() {
    use tutorial::ch11_digits::{Config, Kind, run};
    let c = Config::smoke();
    let r = run(&c, &quiet());
    assert_eq!(r.sizes, (1797 - c.test_images, c.test_images));
    // Ten classes: chance is 10 %; even the tests' tiny residual net (4 channels, 3 epochs)
    // is at more than three times chance.
    let median = r.test_accuracy(Kind::Residual, c.depths[0]).median;
    assert!(median > 0.3, "residual test accuracy {median}");
    for run in &r.runs {
        // Every residual block can be deleted; the plain block that changes the shape cannot.
        let deletable = run.lesions.iter().filter(|l| l.is_some()).count();
        match run.kind {
            Kind::Residual => assert_eq!(deletable, run.lesions.len()),
            Kind::Plain => assert_eq!(deletable, run.lesions.len() - 1),
        }
    }
    check_page(&r.page(), 5);
}

#[test]
fn smoke_pages_render_for_the_cheap_chapters_through_the_chapter_table() {
    for chapter in tutorial::chapters()
        .iter()
        .filter(|c| [1, 3].contains(&c.number))
    {
        let page = (chapter.page)(Size::Smoke, &quiet());
        assert_eq!(page.number, chapter.number);
        assert!(
            page.to_markdown("figures", "../..")
                .starts_with(&format!("# Chapter {}", chapter.number))
        );
    }
}
