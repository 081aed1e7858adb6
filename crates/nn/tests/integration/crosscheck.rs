//! The tape's gradients against the manual-backward reference, and the cross-check's
//! localisation of a wrong backward.

use autograd::{Element, Tape, Tensor, seeded_rng};
use nn::crosscheck::{Mirrored, Pass, crosscheck, crosscheck_layers};
use nn::manual::{self, Layer, Parameter};
use nn::{
    Ctx, Init, Linear, Module, Param, ProjectionBlock, Relu, ResidualBlock, Sequential, Sigmoid,
    Stack, Tanh,
};

const BATCH: usize = 4;
const WIDTH: usize = 8;

/// `depth` residual blocks of width 8; with `projection`, the middle block is a projection
/// block widening to 11 and the blocks after it are of width 11.
fn residual_stack<T: Element>(depth: usize, projection: bool, seed: u64) -> Stack<dyn Mirrored<T>> {
    let mut rng = seeded_rng(seed);
    let mut stack = Stack::<dyn Mirrored<T>>::new();
    let mut width = WIDTH;
    for i in 0..depth {
        stack = if projection && i == depth / 2 {
            width = WIDTH + 3;
            stack.push(Box::new(ProjectionBlock::new(
                WIDTH,
                width,
                Init::PyTorchDefault,
                &mut rng,
            )))
        } else {
            stack.push(Box::new(ResidualBlock::new(
                width,
                Init::PyTorchDefault,
                &mut rng,
            )))
        };
    }
    stack
}

fn data<T: Element>(depth: usize, projection: bool, seed: u64) -> (Tensor<T>, Tensor<T>) {
    let mut rng = seeded_rng(seed);
    let out = if projection && depth > 0 {
        WIDTH + 3
    } else {
        WIDTH
    };
    let x = Tensor::uniform(&[BATCH, WIDTH], T::of(-1.0), T::of(1.0), &mut rng);
    let y = Tensor::uniform(&[BATCH, out], T::of(-1.0), T::of(1.0), &mut rng);
    (x, y)
}

/// The worst relative difference of a residual stack's cross-check.
fn worst_rel<T: Element>(depth: usize, projection: bool) -> f64 {
    let net = residual_stack::<T>(depth, projection, depth as u64);
    let (x, y) = data::<T>(depth, projection, 100 + depth as u64);
    let report = crosscheck(&net, &x, &y).unwrap();
    println!("{report}");
    assert_eq!(report.layers.len(), depth);
    // Every parameter of the network was compared, by its dotted name.
    let compared: Vec<String> = report
        .layers
        .iter()
        .flat_map(|l| l.parameters.iter().map(|c| c.name.clone()))
        .collect();
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(compared, names);
    report.max_rel()
}

#[test]
fn residual_stacks_agree_in_f64_to_1e12() {
    let mut worst = 0.0f64;
    for depth in [1, 2, 8, 64] {
        for projection in [false, true] {
            let rel = worst_rel::<f64>(depth, projection);
            println!("f64 depth {depth:>2} projection {projection:<5}: worst relative {rel:.2e}");
            assert!(
                rel <= 1e-12,
                "depth {depth}, projection {projection}: {rel:e}"
            );
            worst = worst.max(rel);
        }
    }
    println!("f64 worst over all stacks: {worst:.2e}");
}

#[test]
fn residual_stacks_agree_in_f32_to_1e5() {
    let mut worst = 0.0f64;
    for depth in [1, 2, 8, 64] {
        for projection in [false, true] {
            let rel = worst_rel::<f32>(depth, projection);
            println!("f32 depth {depth:>2} projection {projection:<5}: worst relative {rel:.2e}");
            assert!(
                rel <= 1e-5,
                "depth {depth}, projection {projection}: {rel:e}"
            );
            worst = worst.max(rel);
        }
    }
    println!("f32 worst over all stacks: {worst:.2e}");
}

#[test]
fn plain_stacks_of_linear_layers_and_activations_agree() {
    let mut rng = seeded_rng(7);
    let net = Stack::<dyn Mirrored<f64>>::new()
        .push(Box::new(Linear::new(5, 7, true, &mut rng)))
        .push(Box::new(Tanh))
        .push(Box::new(Linear::new(7, 7, false, &mut rng)))
        .push(Box::new(Relu))
        .push(Box::new(Linear::new(7, 3, true, &mut rng)))
        .push(Box::new(Sigmoid));
    let x = Tensor::uniform(&[6, 5], -1.0, 1.0, &mut rng);
    let y = Tensor::uniform(&[6, 3], 0.0, 1.0, &mut rng);
    let report = crosscheck(&net, &x, &y).unwrap();
    assert!(report.passed(1e-12), "{report}");
    assert_eq!(report.layers[1].kind, "Tanh");
    assert_eq!(report.layers[2].parameters.len(), 1); // no bias
    // An empty network: ∂L/∂x is the loss gradient itself.
    let empty = Stack::<dyn Mirrored<f64>>::new();
    let report = crosscheck(&empty, &x, &x.map(|v| v * 0.5)).unwrap();
    assert!(
        report.passed(1e-14) && report.input.max_abs == 0.0,
        "{report}"
    );
    // A single block, without a stack.
    let block = ResidualBlock::<f64>::new(5, Init::he(), &mut rng);
    let err = crosscheck_layers(&[&block], &x, &y)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("crosscheck") && err.contains("[6, 3]"),
        "{err}"
    );
    let report = crosscheck_layers(&[&block], &x, &x).unwrap();
    assert!(report.passed(1e-12), "{report}");
}

/// A residual block whose manual twin forgets the skip term: `return dR` instead of
/// `return dR + d`.
struct ForgetfulBlock(ResidualBlock<f64>);

impl Module<f64> for ForgetfulBlock {
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: &autograd::Var<'t, f64>) -> autograd::Var<'t, f64> {
        self.0.forward(cx, x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
        self.0.named_parameters()
    }
}

impl Mirrored<f64> for ForgetfulBlock {
    fn to_manual(&self) -> Box<dyn Layer<f64>> {
        Box::new(ForgetfulManual(manual::ResidualBlock::from_autograd(
            &self.0,
        )))
    }
}

struct ForgetfulManual(manual::ResidualBlock<f64>);

impl Layer<f64> for ForgetfulManual {
    fn name(&self) -> &'static str {
        "ForgetfulBlock"
    }
    fn forward(&mut self, x: &Tensor<f64>) -> Tensor<f64> {
        self.0.forward(x)
    }
    fn backward(&mut self, d_y: &Tensor<f64>) -> Tensor<f64> {
        let b = &mut self.0;
        let d = b.relu2.backward(d_y);
        let d_r = b.linear2.backward(&d);
        let d_r = b.relu1.backward(&d_r);
        b.linear1.backward(&d_r) // the bug: the skip path's `+ d` is missing
    }
    fn named_parameters(&self) -> Vec<(String, &Parameter<f64>)> {
        self.0.named_parameters()
    }
    fn parameters_mut(&mut self) -> Vec<&mut Parameter<f64>> {
        self.0.parameters_mut()
    }
}

#[test]
fn a_forgotten_skip_term_is_flagged_and_its_layer_named() {
    let mut rng = seeded_rng(11);
    let mut net = Stack::<dyn Mirrored<f64>>::new();
    for i in 0..5 {
        let block = ResidualBlock::new(WIDTH, Init::PyTorchDefault, &mut rng);
        net = if i == 2 {
            net.push(Box::new(ForgetfulBlock(block)))
        } else {
            net.push(Box::new(block))
        };
    }
    let (x, y) = data::<f64>(5, false, 12);
    let report = crosscheck(&net, &x, &y).unwrap();
    println!("{report}");
    assert!(!report.passed(1e-8));
    let first = report.first_disagreement(1e-8).unwrap();
    assert_eq!(first.layer, Some(2));
    assert_eq!(first.kind, "ForgetfulBlock");
    assert_eq!(first.pass, Pass::Backward);
    assert!(first.quantity.contains("d_in"), "{}", first.quantity);
    assert!(first.diff.max_rel > 1e-3);
    // The layers above it agree; its own parameter gradients are right (they only need
    // d_out); everything below inherits the error.
    for l in &report.layers[3..] {
        assert!(l.d_in.within(1e-12) && l.parameters.iter().all(|c| c.diff.within(1e-12)));
    }
    assert!(
        report.layers[2]
            .parameters
            .iter()
            .all(|c| c.diff.within(1e-12))
    );
    assert!(!report.layers[1].d_in.within(1e-8) && !report.input.within(1e-8));
    let shown = report.to_string();
    assert!(
        shown.contains("DISAGREE") && shown.contains("layer 2 (ForgetfulBlock)"),
        "{shown}"
    );
}

/// A linear layer whose manual twin doubles its weight gradient.
struct DoublingLinear(Linear<f64>);

impl Module<f64> for DoublingLinear {
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: &autograd::Var<'t, f64>) -> autograd::Var<'t, f64> {
        self.0.forward(cx, x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
        self.0.named_parameters()
    }
}

impl Mirrored<f64> for DoublingLinear {
    fn to_manual(&self) -> Box<dyn Layer<f64>> {
        Box::new(DoublingManual(manual::Linear::from_autograd(&self.0)))
    }
}

struct DoublingManual(manual::Linear<f64>);

impl Layer<f64> for DoublingManual {
    fn name(&self) -> &'static str {
        "DoublingLinear"
    }
    fn forward(&mut self, x: &Tensor<f64>) -> Tensor<f64> {
        self.0.forward(x)
    }
    fn backward(&mut self, d_out: &Tensor<f64>) -> Tensor<f64> {
        let d_in = self.0.backward(d_out);
        self.0.weight.grad = self.0.weight.grad.as_ref().map(|g| g * 2.0);
        d_in
    }
    fn named_parameters(&self) -> Vec<(String, &Parameter<f64>)> {
        self.0.named_parameters()
    }
    fn parameters_mut(&mut self) -> Vec<&mut Parameter<f64>> {
        self.0.parameters_mut()
    }
}

/// A ReLU whose twin computes tanh: a forward bug.
struct MisnamedRelu;

impl Module<f64> for MisnamedRelu {
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: &autograd::Var<'t, f64>) -> autograd::Var<'t, f64> {
        Relu.forward(cx, x)
    }
    fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
        Vec::new()
    }
}

impl Mirrored<f64> for MisnamedRelu {
    fn to_manual(&self) -> Box<dyn Layer<f64>> {
        Box::new(manual::Tanh::new())
    }
}

#[test]
fn a_wrong_parameter_gradient_and_a_wrong_forward_are_localised() {
    let mut rng = seeded_rng(13);
    let net = Stack::<dyn Mirrored<f64>>::new()
        .push(Box::new(Linear::new(4, 6, true, &mut rng)))
        .push(Box::new(Tanh))
        .push(Box::new(DoublingLinear(Linear::new(6, 6, true, &mut rng))))
        .push(Box::new(Tanh))
        .push(Box::new(Linear::new(6, 2, true, &mut rng)));
    let x = Tensor::uniform(&[5, 4], -1.0, 1.0, &mut rng);
    let y = Tensor::uniform(&[5, 2], -1.0, 1.0, &mut rng);
    let report = crosscheck(&net, &x, &y).unwrap();
    let first = report.first_disagreement(1e-10).unwrap();
    assert_eq!(
        (first.layer, first.quantity.as_str()),
        (Some(2), "2.weight")
    );
    assert!((first.diff.max_rel - 0.5).abs() < 1e-12, "{first}"); // |2g − g| / |2g|
    assert!(report.layers[2].d_in.within(1e-12));

    let net = Stack::<dyn Mirrored<f64>>::new()
        .push(Box::new(Linear::new(4, 6, true, &mut rng)))
        .push(Box::new(MisnamedRelu))
        .push(Box::new(Linear::new(6, 2, true, &mut rng)));
    let first = crosscheck(&net, &x, &y)
        .unwrap()
        .first_disagreement(1e-10)
        .unwrap();
    assert_eq!(
        (first.layer, first.pass, first.kind),
        (Some(1), Pass::Forward, "Tanh")
    );
}

/// A `Stack` is a `Sequential`: the same forward, the same parameter names, the same
/// gradients (checked on blocks that share their parameters).
#[test]
fn a_stack_is_a_sequential() {
    let mut rng = seeded_rng(17);
    let blocks: Vec<ResidualBlock<f64>> = (0..3)
        .map(|_| ResidualBlock::new(WIDTH, Init::he(), &mut rng))
        .collect();
    let share = |l: &Linear<f64>| Linear {
        weight: l.weight.clone(),
        bias: l.bias.clone(),
    };
    let mut seq = Sequential::new();
    let mut stack = Stack::<ResidualBlock<f64>>::new();
    for b in &blocks {
        seq = seq.push(ResidualBlock::from_layers(
            share(&b.linear1),
            share(&b.linear2),
        ));
        stack = stack.push(Box::new(ResidualBlock::from_layers(
            share(&b.linear1),
            share(&b.linear2),
        )));
    }
    let names = |m: &dyn Module<f64>| -> Vec<String> {
        m.named_parameters().into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(&seq), names(&stack));
    let (x, _) = data::<f64>(3, false, 18);
    let run = |m: &dyn Module<f64>| {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let out = m.forward(&cx, &cx.input(x.clone()));
        let grads = cx.param_grads(&out.tanh().sum().backward());
        let g: Vec<Tensor<f64>> = m.parameters().iter().map(|p| grads.wrt(p)).collect();
        (out.value().clone(), g)
    };
    assert_eq!(run(&seq), run(&stack));
}
