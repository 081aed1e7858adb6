//! Convolution layers, pooling and the ResNet basic block: shapes, values against the
//! autograd ops, and parameter gradients from the tape against finite differences.

use autograd::{Tape, Tensor, Var, seeded_rng};
use nn::{
    Activation, AvgPool2d, BasicConvBlock, Conv2d, Ctx, Flatten, GlobalAvgPool, Init, Linear,
    MaxPool2d, Module, Param, Relu, ResidualUnit, Sequential,
};

fn rand(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::uniform(shape, -1.0, 1.0, &mut seeded_rng(seed))
}

/// The scalar both sides of the check differentiate: a non-linear readout, so the incoming
/// gradient is not all ones.
fn readout<'t>(y: &Var<'t, f64>) -> Var<'t, f64> {
    y.tanh().sum()
}

/// Compares the tape's gradient of every parameter of `m` with central differences of the
/// loss, perturbing one element at a time. Both sides run in training mode (batch norm then
/// uses the batch's statistics in both).
fn check_params(m: &dyn Module<f64>, x: &Tensor<f64>) {
    check_params_in(m, x, true);
}

fn context(tape: &Tape<f64>, training: bool) -> Ctx<'_, f64> {
    if training {
        Ctx::train(tape, 0)
    } else {
        Ctx::eval(tape)
    }
}

fn check_params_in(m: &dyn Module<f64>, x: &Tensor<f64>, training: bool) {
    let loss = |m: &dyn Module<f64>| {
        let tape = Tape::new();
        let cx = context(&tape, training);
        readout(&m.forward(&cx, &cx.input(x.clone()))).item()
    };
    let tape = Tape::new();
    let cx = context(&tape, training);
    let grads = cx.param_grads(&readout(&m.forward(&cx, &cx.input(x.clone()))).backward());
    let params = m.named_parameters();
    assert!(!params.is_empty());
    for (name, p) in params {
        let analytic = grads.wrt(&p);
        assert_eq!(analytic.shape(), p.shape().as_slice(), "{name}");
        for j in 0..analytic.numel() {
            let numeric = central_difference(&p, j, || loss(m));
            let a = analytic.data()[j];
            assert!(
                (a - numeric).abs() <= 1e-7 + 1e-6 * numeric.abs(),
                "{name}[{j}]: tape {a} vs finite difference {numeric}"
            );
        }
    }
}

fn central_difference(p: &Param<f64>, j: usize, loss: impl Fn() -> f64) -> f64 {
    let eps = 1e-6;
    let original = p.value();
    let mut shifted = original.clone();
    shifted.data_mut()[j] += eps;
    p.set(shifted.clone());
    let up = loss();
    shifted.data_mut()[j] = original.data()[j] - eps;
    p.set(shifted);
    let down = loss();
    p.set(original);
    (up - down) / (2.0 * eps)
}

/// The gradient with respect to the input, against central differences (for layers
/// without parameters).
fn check_input_gradient(m: &dyn Module<f64>, x: &Tensor<f64>) {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.tracked_input(x.clone());
    let analytic = readout(&m.forward(&cx, &xv)).backward().wrt(&xv);
    let probe = Param::new(x.clone());
    for j in 0..x.numel() {
        let numeric = central_difference(&probe, j, || {
            let tape = Tape::new();
            let cx = Ctx::train(&tape, 0);
            readout(&m.forward(&cx, &cx.input(probe.value()))).item()
        });
        assert!((analytic.data()[j] - numeric).abs() < 1e-7, "input[{j}]");
    }
}

#[test]
fn conv2d_layer_is_the_conv2d_op_and_starts_as_in_pytorch() {
    let mut rng = seeded_rng(1);
    let conv = Conv2d::<f64>::new(16, 32, (3, 3), true, &mut rng).with_padding((1, 1));
    assert_eq!(
        (conv.in_channels(), conv.out_channels(), conv.kernel()),
        (16, 32, (3, 3))
    );
    // PyTorch's default: weight and bias uniform in ±1/√fan-in, fan-in = 16·3·3, so the
    // weight's std is that bound over √3.
    let bound = 1.0 / 144f64.sqrt();
    let w = conv.weight.value();
    let std_of = |t: &Tensor<f64>| {
        let n = t.numel() as f64;
        (t.data().iter().map(|x| x * x).sum::<f64>() / n).sqrt()
    };
    assert!((std_of(&w) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.05);
    let b = conv.bias.as_ref().unwrap().value();
    assert!(w.data().iter().chain(b.data()).all(|v| v.abs() <= bound));
    assert!(b.data().iter().any(|&v| v != 0.0));
    // The ResNet convolutions: torchvision's N(0, 2/fan-out), fan-out = 64·3·3, no bias.
    let resnet = Conv2d::<f64>::conv3x3(16, 64, 1, &mut rng);
    let std = std_of(&resnet.weight.value());
    assert!((std / (2.0f64 / 576.0).sqrt() - 1.0).abs() < 0.05, "{std}");
    assert!(resnet.bias.is_none());
    assert!(
        Conv2d::<f64>::new(2, 3, (1, 1), false, &mut rng)
            .bias
            .is_none()
    );

    let x = rand(&[2, 16, 5, 6], 2);
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let y = conv.forward(&cx, &cx.input(x.clone()));
    let bias = conv.bias.as_ref().map(Param::value);
    let want = x.conv2d(&w, bias.as_ref(), (1, 1), (1, 1));
    assert_eq!(y.value(), &want);
    assert_eq!(y.shape(), &[2, 32, 5, 6]);

    let strided = Conv2d::<f64>::conv3x3(16, 8, 2, &mut rng);
    assert!(strided.bias.is_none());
    assert_eq!(
        strided.forward(&cx, &cx.input(x.clone())).shape(),
        &[2, 8, 3, 3]
    );
    let pointwise = Conv2d::<f64>::conv1x1(16, 4, 2, &mut rng);
    assert_eq!(pointwise.forward(&cx, &cx.input(x)).shape(), &[2, 4, 3, 3]);
    assert_eq!(pointwise.named_parameters().len(), 1);
}

#[test]
fn conv2d_reports_bad_input() {
    let conv = Conv2d::<f32>::new(3, 4, (3, 3), true, &mut seeded_rng(3));
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let wrong_channels = cx.input(Tensor::zeros(&[1, 2, 8, 8]));
    let (err, line) = (conv.try_forward(&cx, &wrong_channels), line!());
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.contains(&format!("tests/integration/conv.rs:{line}:")),
        "{msg}"
    );
    assert!(
        msg.contains("conv2d") && msg.contains("[1, 2, 8, 8]"),
        "{msg}"
    );
    let too_small = cx.input(Tensor::zeros(&[1, 3, 2, 8]));
    assert!(conv.try_forward(&cx, &too_small).is_err());
    let line = line!() + 2;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        conv.forward(&cx, &wrong_channels);
    }));
    let payload = caught.unwrap_err();
    let panic_msg = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    assert!(
        panic_msg.contains(&format!("tests/integration/conv.rs:{line}:")),
        "{panic_msg}"
    );
}

#[test]
fn conv2d_parameter_gradients_match_finite_differences() {
    let mut rng = seeded_rng(4);
    let x = rand(&[2, 3, 5, 4], 5);
    let layers = [
        Conv2d::<f64>::new(3, 2, (3, 3), true, &mut rng).with_padding((1, 1)),
        Conv2d::<f64>::new(3, 2, (2, 3), false, &mut rng).with_stride((2, 1)),
        Conv2d::<f64>::new(3, 4, (1, 1), true, &mut rng), // pointwise, with bias
        Conv2d::<f64>::conv1x1(3, 2, 2, &mut rng),
        Conv2d::<f64>::conv3x3(3, 2, 2, &mut rng),
    ];
    for layer in &layers {
        check_params(layer, &x);
    }
}

#[test]
fn pooling_layers_are_the_pooling_ops() {
    let x = rand(&[2, 3, 6, 6], 6);
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let xv = cx.input(x.clone());
    let max = MaxPool2d::new((3, 3), (2, 2)).with_padding((1, 1));
    assert_eq!(
        Module::<f64>::forward(&max, &cx, &xv).value(),
        &x.max_pool2d((3, 3), (2, 2), (1, 1))
    );
    let avg = AvgPool2d::new((2, 2), (2, 2));
    let pooled = Module::<f64>::forward(&avg, &cx, &xv);
    assert_eq!(pooled.shape(), &[2, 3, 3, 3]);
    let corner =
        (x.get(&[1, 2, 0, 0]) + x.get(&[1, 2, 0, 1]) + x.get(&[1, 2, 1, 0])) + x.get(&[1, 2, 1, 1]);
    assert!((pooled.value().get(&[1, 2, 0, 0]) - corner / 4.0).abs() < 1e-15);
    let global = Module::<f64>::forward(&GlobalAvgPool, &cx, &xv);
    assert_eq!(global.shape(), &[2, 3]);
    assert!(
        (global.value().get(&[0, 1]) - x.narrow(1, 1, 1).narrow(0, 0, 1).mean().item()).abs()
            < 1e-15
    );
    let flat = Module::<f64>::forward(&Flatten, &cx, &xv);
    assert_eq!(flat.shape(), &[2, 108]);
    assert_eq!(flat.value().to_vec(), x.to_vec());
    // Bad input is an error from the try form.
    let rank2 = cx.input(Tensor::<f64>::zeros(&[2, 3]));
    assert!(max.try_forward(&cx, &rank2).is_err());
    assert!(avg.try_forward(&cx, &rank2).is_err());
    assert!(GlobalAvgPool.try_forward(&cx, &rank2).is_err());
    assert!(
        Flatten
            .try_forward(&cx, &cx.input(Tensor::<f64>::scalar(1.0)))
            .is_err()
    );

    for layer in [&max as &dyn Module<f64>, &avg, &GlobalAvgPool, &Flatten] {
        check_input_gradient(layer, &rand(&[2, 2, 4, 4], 7));
    }
}

#[test]
fn basic_block_with_identity_shortcut() {
    let mut rng = seeded_rng(8);
    let block = BasicConvBlock::<f64>::new(3, 3, 1, &mut rng);
    assert!(block.projection.is_none());
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "norm1.weight",
            "norm1.bias",
            "conv2.weight",
            "norm2.weight",
            "norm2.bias"
        ]
    );
    let buffers: Vec<String> = block.named_buffers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        buffers,
        [
            "norm1.running_mean",
            "norm1.running_var",
            "norm1.num_batches_tracked",
            "norm2.running_mean",
            "norm2.running_var",
            "norm2.num_batches_tracked"
        ]
    );
    let x = rand(&[2, 3, 4, 4], 9);
    check_params(&block, &x);

    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.input(x);
    let y = block.forward(&cx, &xv);
    assert_eq!(y.shape(), xv.shape());
    // H(x) = ReLU(F(x) + x), and the lesioned block is ReLU(x).
    let parts = (&block.branch(&cx, &xv) + &xv).relu();
    assert_eq!(y.value(), parts.value());
    assert_eq!(
        block.forward_without_branch(&cx, &xv).value(),
        xv.relu().value()
    );
}

#[test]
fn basic_block_with_projection_shortcut() {
    let mut rng = seeded_rng(10);
    // Channels and resolution change: 2 → 4 channels, stride 2.
    let block = BasicConvBlock::<f64>::new(2, 4, 2, &mut rng);
    let projection = block.projection.as_ref().expect("a projection shortcut");
    assert_eq!(projection.conv.kernel(), (1, 1));
    assert_eq!(projection.conv.stride, (2, 2));
    assert!(projection.norm.is_some());
    let names: Vec<String> = block
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        &names[6..],
        [
            "projection.conv.weight",
            "projection.norm.weight",
            "projection.norm.bias"
        ]
    );
    assert_eq!(block.named_buffers()[7].0, "projection.norm.running_var");
    assert_eq!(
        block.named_buffers()[8].0,
        "projection.norm.num_batches_tracked"
    );
    let x = rand(&[2, 2, 5, 4], 11);
    check_params(&block, &x);

    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let xv = cx.input(x);
    let y = block.forward(&cx, &xv);
    assert_eq!(y.shape(), &[2, 4, 3, 2]);
    let parts = (&block.branch(&cx, &xv) + &block.shortcut(&cx, &xv)).relu();
    assert_eq!(y.value(), parts.value());

    // Only the stride changes, or only the channels: still a projection.
    assert!(
        BasicConvBlock::<f64>::new(2, 2, 2, &mut rng)
            .projection
            .is_some()
    );
    assert!(
        BasicConvBlock::<f64>::new(2, 3, 1, &mut rng)
            .projection
            .is_some()
    );
}

#[test]
fn basic_block_in_evaluation_uses_running_statistics() {
    let mut rng = seeded_rng(15);
    let block = BasicConvBlock::<f64>::new(2, 3, 2, &mut rng);
    let x = rand(&[3, 2, 4, 4], 16);
    // A few training passes move the running statistics away from (0, 1).
    for seed in 0..3 {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, seed);
        block.forward(&cx, &cx.input(x.map(|v| 2.0 * v + 0.5)));
    }
    let moved = block.named_buffers()[0].1.value();
    assert!(moved.data().iter().any(|&m| m.abs() > 1e-3));
    // In evaluation, an image's output does not depend on the rest of the batch …
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let batch = block.forward(&cx, &cx.input(x.clone()));
    let alone = block.forward(&cx, &cx.input(x.narrow(0, 1, 1)));
    assert!(batch.value().narrow(0, 1, 1).max_abs_diff(alone.value()) < 1e-12);
    // … the running statistics stay put …
    assert_eq!(block.named_buffers()[0].1.value(), moved);
    // … and the gradients still match finite differences.
    check_params_in(&block, &x, false);
}

#[test]
fn a_small_convolutional_network_has_tape_gradients_and_learns() {
    // conv stem → block without normalisation (identity norm) → pool → classifier.
    let mut rng = seeded_rng(12);
    let net = Sequential::new()
        .push(
            Conv2d::<f64>::with_init(1, 2, (3, 3), true, Init::he(), &mut rng).with_padding((1, 1)),
        )
        .push(Relu)
        .push(BasicConvBlock::<f64, Activation>::with_norm(
            2,
            3,
            2,
            |_| Activation::Identity,
            &mut rng,
        ))
        .push(MaxPool2d::new((2, 2), (1, 1)))
        .push(GlobalAvgPool)
        .push(Linear::with_init(3, 2, true, Init::he(), &mut rng));
    let x = rand(&[2, 1, 5, 5], 13);
    check_params(&net, &x);
    assert_eq!(net.named_parameters()[2].0, "2.conv1.weight");

    // Plain SGD on a squared error: the loss goes down.
    let target = rand(&[2, 2], 14);
    let step = || {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        let diff = &net.forward(&cx, &cx.input(x.clone())) - &cx.input(target.clone());
        let loss = (&diff * &diff).mean();
        let grads = cx.param_grads(&loss.backward());
        for p in net.parameters() {
            let g = grads.wrt(&p);
            p.update(|w| w.iter_mut().zip(g.data()).for_each(|(w, g)| *w -= 0.1 * g));
        }
        loss.item()
    };
    let first = step();
    let mut last = first;
    for _ in 0..30 {
        last = step();
    }
    assert!(last < 0.5 * first, "loss {first} → {last}");
}
