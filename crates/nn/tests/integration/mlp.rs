//! The MLP builder: the networks the tutorial compares, their per-unit parameters, lesions,
//! zero-initialised branches, and their gradients against finite differences.

use autograd::{Tape, Tensor, seeded_rng};
use nn::{
    Activation, Architecture, Ctx, HiddenUnit, Init, Linear, MlpConfig, Module, Normalization,
    ResidualBlock,
};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

fn copy(l: &Linear<f64>) -> Linear<f64> {
    Linear::from_tensors(l.weight.value(), l.bias.as_ref().map(|b| b.value()))
}

fn names(params: Vec<(String, nn::Param<f64>)>) -> Vec<String> {
    params.into_iter().map(|(n, _)| n).collect()
}

#[test]
fn a_residual_mlp_is_a_stack_of_the_notebooks_blocks() {
    let net = MlpConfig::residual(3, 4, 2, 3)
        .init(Init::he())
        .build::<f64>(&mut seeded_rng(1));
    assert_eq!(net.depth(), 3);
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(rand(&[5, 3], 2));
    // The same weights in nn::ResidualBlock, composed by hand.
    let mut h = net.input.forward(&cx, &x);
    for unit in &net.hidden {
        let HiddenUnit::Residual(block) = unit else {
            panic!("a residual MLP has residual units")
        };
        let notebook =
            ResidualBlock::from_layers(copy(&block.branch.linear1), copy(&block.branch.linear2));
        h = notebook.forward(&cx, &h);
    }
    let by_hand = net.output.forward(&cx, &h);
    assert_eq!(net.forward(&cx, &x).value(), by_hand.value());
    assert_eq!(
        names(net.hidden_parameters(1)),
        [
            "branch.linear1.weight",
            "branch.linear1.bias",
            "branch.linear2.weight",
            "branch.linear2.bias"
        ]
    );
    let all = names(net.named_parameters());
    assert_eq!(all.len(), 2 + 3 * 4 + 2);
    assert_eq!(all[2], "hidden.0.branch.linear1.weight");
    assert_eq!(all[all.len() - 1], "output.bias");
}

#[test]
fn a_plain_mlp_is_linear_layers_and_activations() {
    let net = MlpConfig::plain(2, 5, 3, 4)
        .activation(Activation::Tanh)
        .init(Init::xavier("tanh"))
        .build::<f64>(&mut seeded_rng(3));
    assert_eq!(net.depth(), 4);
    assert_eq!(
        net.num_parameters(),
        (2 * 5 + 5) + 4 * (5 * 5 + 5) + (5 * 3 + 3)
    );
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(rand(&[6, 2], 4));
    let layer = |i: usize| match &net.hidden[i] {
        HiddenUnit::Plain(l) => l,
        HiddenUnit::Residual(_) => panic!("a plain MLP has plain layers"),
    };
    let mut h = net.input.forward(&cx, &x);
    for i in 0..4 {
        h = layer(i).linear.forward(&cx, &h).tanh();
    }
    assert_eq!(
        net.forward(&cx, &x).value(),
        net.output.forward(&cx, &h).value()
    );
    // Lesioning layers 1 and 2 of a plain network: they become the identity.
    let mut h = net.input.forward(&cx, &x);
    for i in [0, 3] {
        h = layer(i).linear.forward(&cx, &h).tanh();
    }
    let lesioned = net.forward_with_lesions(&cx, &x, &[1, 2]);
    assert_eq!(lesioned.value(), net.output.forward(&cx, &h).value());
    assert!(net.hidden[0].as_residual_unit().is_none());
    assert_eq!(
        names(net.hidden_parameters(2)),
        ["linear.weight", "linear.bias"]
    );
}

#[test]
fn lesioning_a_residual_block_drops_only_its_branch() {
    let net = MlpConfig::residual(2, 4, 2, 3)
        .branch_scale(Some(0.5))
        .build::<f64>(&mut seeded_rng(5));
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(rand(&[4, 2], 6));
    let unit = |i: usize| net.hidden[i].as_residual_unit().unwrap();
    let h0 = net.input.forward(&cx, &x);
    let h1 = unit(0).forward(&cx, &h0);
    let h2 = unit(1).forward_without_branch(&cx, &h1); // relu(h1)
    let h3 = unit(2).forward(&cx, &h2);
    let lesioned = net.forward_with_lesions(&cx, &x, &[1]);
    assert_eq!(lesioned.value(), net.output.forward(&cx, &h3).value());
    assert_ne!(lesioned.value(), net.forward(&cx, &x).value());
    // The branch carries the scale: H = relu(h + 0.5·F(h)).
    let f = unit(0).branch(&cx, &h0);
    let HiddenUnit::Residual(block) = &net.hidden[0] else {
        unreachable!()
    };
    let raw = block.branch.forward(&cx, &h0);
    assert!(f.value().max_abs_diff((raw * 0.5).value()) < 1e-15);
    let (out, states) = net.forward_with_states(&cx, &x);
    assert_eq!(states.len(), 4);
    assert_eq!(states[1].value(), h1.value());
    assert_eq!(out.value(), net.forward(&cx, &x).value());
}

#[test]
fn zero_initialised_branches_start_every_block_as_its_shortcut() {
    for norm in [
        Normalization::None,
        Normalization::Layer,
        Normalization::Batch,
    ] {
        let net = MlpConfig::residual(3, 6, 2, 4)
            .norm(norm)
            .init(Init::he())
            .zero_init_last(true)
            .build::<f64>(&mut seeded_rng(7));
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let x = cx.input(rand(&[8, 3], 8));
        let all_lesioned = net.forward_with_lesions(&cx, &x, &[0, 1, 2, 3]);
        let out = net.forward(&cx, &x);
        assert!(
            out.value().max_abs_diff(all_lesioned.value()) < 1e-12,
            "{norm:?}: a zero branch adds nothing"
        );
        // …but still learns: its last layer gets a gradient.
        let grads = cx.param_grads(&out.tanh().sum().backward());
        let HiddenUnit::Residual(block) = &net.hidden[0] else {
            unreachable!()
        };
        let last = match &block.branch.norm2 {
            Some(n) => n.weight().clone(),
            None => block.branch.linear2.weight.clone(),
        };
        assert!(grads.wrt(&last).norm() > 1e-6, "{norm:?}");
    }
}

#[test]
fn every_configuration_matches_finite_differences() {
    let configs = [
        MlpConfig::plain(2, 3, 2, 2).norm(Normalization::Batch),
        MlpConfig::residual(2, 3, 2, 2)
            .activation(Activation::Tanh)
            .norm(Normalization::Layer)
            .branch_scale(Some(1.0 / 2f64.sqrt())),
        MlpConfig::residual(2, 3, 2, 2).norm(Normalization::Batch),
    ];
    let x = rand(&[4, 2], 9);
    let w = rand(&[4, 2], 10);
    for (k, config) in configs.iter().enumerate() {
        let net = config.build::<f64>(&mut seeded_rng(11 + k as u64));
        let loss = |train: bool| {
            let tape = Tape::new();
            let cx = if train {
                Ctx::train(&tape, 0)
            } else {
                Ctx::eval(&tape)
            };
            let y = net.forward(&cx, &cx.input(x.clone())).tanh();
            (&y * &cx.input(w.clone())).sum().item()
        };
        for train in [true, false] {
            let tape = Tape::new();
            let cx = if train {
                Ctx::train(&tape, 0)
            } else {
                Ctx::eval(&tape)
            };
            let y = net.forward(&cx, &cx.input(x.clone())).tanh();
            let grads = cx.param_grads(&(&y * &cx.input(w.clone())).sum().backward());
            for (name, p) in net.named_parameters() {
                let analytic = grads.wrt(&p);
                let original = p.value();
                for j in 0..original.numel() {
                    let mut v = original.clone();
                    v.data_mut()[j] += 1e-6;
                    p.set(v.clone());
                    let up = loss(train);
                    v.data_mut()[j] -= 2e-6;
                    p.set(v);
                    let down = loss(train);
                    p.set(original.clone());
                    let numeric = (up - down) / 2e-6;
                    let a = analytic.data()[j];
                    assert!(
                        (a - numeric).abs() < 1e-7 + 1e-6 * numeric.abs(),
                        "config {k} {name}[{j}] train={train}: {a} vs {numeric}"
                    );
                }
            }
        }
    }
}

#[test]
fn batch_norm_buffers_are_named_like_pytorch() {
    let net = MlpConfig::residual(2, 3, 2, 2)
        .norm(Normalization::Batch)
        .build::<f32>(&mut seeded_rng(12));
    let buffers: Vec<String> = net.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(buffers.len(), 2 * 2 * 3);
    assert_eq!(buffers[0], "hidden.0.branch.norm1.running_mean");
    let plain = MlpConfig::plain(2, 3, 2, 1)
        .norm(Normalization::Batch)
        .build::<f32>(&mut seeded_rng(13));
    let buffers: Vec<String> = plain.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        buffers,
        [
            "hidden.0.norm.running_mean",
            "hidden.0.norm.running_var",
            "hidden.0.norm.num_batches_tracked"
        ]
    );
    assert_eq!(
        MlpConfig::plain(1, 1, 1, 1).architecture,
        Architecture::Plain
    );
}
