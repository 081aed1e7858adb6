//! A bad input names the line of *this* file that called the layer, whether the layer was
//! called directly, inside a block, or inside a `Sequential` / `Stack` — which also say
//! which of their layers failed (index and type). Inference without tape boilerplate:
//! `predict` and `Ctx::inference`.

use autograd::{Error, Tape, Tensor, seeded_rng};
use nn::{
    BasicConvBlock, BatchNorm1d, Ctx, Dropout, Init, Linear, Module, ProjectionBlock, Relu,
    ResidualBlock, ResidualUnit, Sequential, Stack,
};

/// `result`'s error message, checked to name this file at `line`.
fn message_at<V>(result: autograd::Result<V>, line: u32) -> (Error, String) {
    let err = result.err().expect("bad input must be an error");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("tests/integration/layer_errors.rs:{line}:")),
        "{msg} does not name line {line}"
    );
    (err, msg)
}

/// The panic message of `f`, checked to name this file at `line`.
fn panic_at(f: impl FnOnce(), line: u32) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        msg.contains(&format!("tests/integration/layer_errors.rs:{line}:")),
        "{msg} does not name line {line}"
    );
    msg
}

#[test]
fn linear_names_the_callers_line() {
    let layer = Linear::<f64>::new(3, 2, true, &mut seeded_rng(0));
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(Tensor::zeros(&[4, 5]));
    let (result, line) = (layer.try_forward(&cx, &x), line!());
    let (err, msg) = message_at(result, line);
    assert!(matches!(err, Error::MatMul { op: "linear", .. }), "{err:?}");
    assert!(msg.contains("[4, 5]") && msg.contains("[2, 3]"), "{msg}");
    let line = line!() + 1;
    let panic = panic_at(|| drop(layer.forward(&cx, &x)), line);
    assert!(panic.contains("linear"), "{panic}");
    // A good input still works through the try form.
    let ok = layer.try_forward(&cx, &cx.input(Tensor::zeros(&[4, 3])));
    assert_eq!(ok.unwrap().shape(), &[4, 2]);
}

#[test]
fn sequential_names_the_failing_layer_and_the_callers_line() {
    let mut rng = seeded_rng(1);
    let net = Sequential::<f64>::new()
        .push(Linear::new(3, 4, true, &mut rng))
        .push(Relu)
        .push(Linear::new(5, 2, true, &mut rng));
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = cx.input(Tensor::zeros(&[2, 3]));
    let (result, line) = (net.try_forward(&cx, &x), line!());
    let (err, msg) = message_at(result, line);
    let Error::InLayer {
        container,
        index,
        layer,
        ..
    } = &err
    else {
        panic!("not a layer error: {err:?}");
    };
    assert_eq!(
        (*container, *index, layer.as_str()),
        ("Sequential", 2, "Linear<f64>")
    );
    assert!(matches!(err.innermost(), Error::MatMul { .. }), "{err:?}");
    assert!(
        msg.starts_with("Sequential layer 2 (Linear<f64>): linear:"),
        "{msg}"
    );
    let line = line!() + 1;
    let panic = panic_at(|| drop(net.forward(&cx, &x)), line);
    assert!(
        panic.starts_with("Sequential layer 2 (Linear<f64>)"),
        "{panic}"
    );

    // Nested containers name every level, and still this file's line.
    let outer = Sequential::<f64>::new()
        .push(Relu)
        .push(Sequential::new().push(Linear::new(7, 2, false, &mut rng)));
    let (result, line) = (outer.try_forward(&cx, &x), line!());
    let (_, msg) = message_at(result, line);
    assert!(
        msg.starts_with(
            "Sequential layer 1 (Sequential<f64>): Sequential layer 0 (Linear<f64>): linear:"
        ),
        "{msg}"
    );
}

#[test]
fn stack_and_blocks_name_the_callers_line() {
    let mut rng = seeded_rng(2);
    let stack = Stack::<dyn ResidualUnit<f64>>::new()
        .push(Box::new(ResidualBlock::new(4, Init::he(), &mut rng)))
        .push(Box::new(ProjectionBlock::new(6, 3, Init::he(), &mut rng)));
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = cx.input(Tensor::zeros(&[2, 4]));
    let (result, line) = (stack.try_forward(&cx, &x), line!());
    let (err, msg) = message_at(result, line);
    assert!(
        matches!(&err, Error::InLayer { container: "Stack", index: 1, layer, .. } if layer == "ProjectionBlock<f64>"),
        "{err:?}"
    );
    assert!(msg.contains("[2, 4]"), "{msg}");

    // A block called directly names this file too, not the block's source.
    let block = ResidualBlock::<f64>::new(5, Init::he(), &mut rng);
    let (result, line) = (block.try_forward(&cx, &x), line!());
    message_at(result, line);
    let line = line!() + 1;
    panic_at(|| drop(block.forward(&cx, &x)), line);
    let conv = BasicConvBlock::<f64>::new(3, 4, 2, &mut rng);
    let image = cx.input(Tensor::zeros(&[1, 2, 8, 8]));
    let (result, line) = (conv.try_forward(&cx, &image), line!());
    let (_, msg) = message_at(result, line);
    assert!(msg.contains("conv2d"), "{msg}");
}

#[test]
fn predict_is_eval_mode_without_a_tape() {
    let mut rng = seeded_rng(3);
    let net = Sequential::<f64>::new()
        .push(Linear::new(3, 6, true, &mut rng))
        .push(BatchNorm1d::new(6))
        .push(Dropout::new(0.5))
        .push(Linear::new(6, 2, true, &mut rng));
    // Move the running statistics away from their start, so eval ≠ train.
    let x = Tensor::uniform(&[8, 3], -2.0, 2.0, &mut rng);
    {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, 0);
        net.forward(&cx, &cx.input(x.clone()));
    }
    let expected = {
        let tape = Tape::new();
        let cx = Ctx::eval(&tape);
        net.forward(&cx, &cx.input(x.clone())).value().clone()
    };
    assert_eq!(net.predict(&x), expected);
    // Ctx::inference records nothing: parameters are bound as constants.
    let tape = Tape::new();
    let cx = Ctx::inference(&tape);
    let y = net.forward(&cx, &cx.input(x.clone()));
    assert_eq!((tape.len(), y.is_tracked()), (0, false));
    assert_eq!(y.value(), &expected);
    // Errors name the line that called predict.
    let wrong = Tensor::zeros(&[8, 4]);
    let (result, line) = (net.try_predict(&wrong), line!());
    let (err, _) = message_at(result, line);
    assert!(matches!(err, Error::InLayer { index: 0, .. }), "{err:?}");
    let line = line!() + 1;
    panic_at(|| drop(net.predict(&wrong)), line);
}
