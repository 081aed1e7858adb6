//! Checkpointed modules: the same losses, gradients, random masks and running statistics
//! as without checkpointing, bit for bit.

use autograd::{Element, Tape, Tensor, Var, seeded_rng};
use nn::{
    BasicConvBlock, Buffer, Checkpoint, Ctx, Dropout, Init, Module, Param, ResidualBlock,
    Segmented, Stack, StochasticDepth, prefixed,
};

/// A residual block whose branch is dropped with probability 0.2 (stochastic depth),
/// followed by dropout: both draw from the step's generator.
struct NoisyBlock<T: Element> {
    block: StochasticDepth<ResidualBlock<T>, T>,
    dropout: Dropout,
}

impl<T: Element> NoisyBlock<T> {
    fn new(width: usize, rng: &mut impl autograd::rand::Rng) -> Self {
        NoisyBlock {
            block: StochasticDepth::new(ResidualBlock::new(width, Init::he(), rng), 0.2),
            dropout: Dropout::new(0.1),
        }
    }
}

impl<T: Element> Module<T> for NoisyBlock<T> {
    fn forward<'t>(&self, cx: &Ctx<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        self.dropout.forward(cx, &self.block.forward(cx, x))
    }

    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        prefixed("block", self.block.named_parameters())
    }
}

fn noisy_stack<T: Element>(depth: usize) -> Stack<NoisyBlock<T>> {
    let mut rng = seeded_rng(3);
    (0..depth)
        .map(|_| Box::new(NoisyBlock::new(8, &mut rng)))
        .collect()
}

/// One training step (on an input of shape `input`): the loss and the parameter gradients, flattened in parameter order. A
/// dropout after the model checks that the step's generator continues as without
/// checkpointing.
fn step<T: Element>(model: &dyn Module<T>, seed: u64, input: &[usize]) -> (T, Vec<T>) {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, seed);
    let x = cx.input(Tensor::uniform(
        input,
        T::of(-1.0),
        T::of(1.0),
        &mut seeded_rng(9),
    ));
    let h = Dropout::new(0.3).forward(&cx, &model.forward(&cx, &x));
    let loss = (&h * &h).mean();
    let grads = cx.param_grads(&loss.backward_leaves());
    let flat = model
        .parameters()
        .iter()
        .flat_map(|p| grads.wrt(p).to_vec())
        .collect();
    (loss.item(), flat)
}

/// Two training steps of `plain` and of `checkpointed` (without parameter updates) give
/// the same losses and gradients, bit for bit.
fn assert_same_steps<T: Element>(
    plain: &dyn Module<T>,
    checkpointed: &dyn Module<T>,
    input: &[usize],
    what: &str,
) {
    for seed in [1, 2] {
        let (plain_loss, plain_grads) = step(plain, seed, input);
        let (loss, grads) = step(checkpointed, seed, input);
        // `{:?}` prints the shortest decimal that reads back to the same bits.
        assert_eq!(
            format!("{loss:?}"),
            format!("{plain_loss:?}"),
            "{what}, seed {seed}"
        );
        let bits = |g: &[T]| g.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>();
        assert_eq!(
            bits(&grads),
            bits(&plain_grads),
            "{} {what}, seed {seed}",
            T::NAME
        );
    }
}

fn same_steps_with_and_without_checkpointing<T: Element>() {
    let plain = noisy_stack::<T>(9);
    let input = [16, 8];
    let every = |k| noisy_stack::<T>(9).checkpoint_every(k);
    assert_same_steps(&plain, &every(1), &input, "every block");
    assert_same_steps(&plain, &every(4), &input, "every 4 blocks");
    assert_same_steps(
        &plain,
        &noisy_stack::<T>(9).checkpoint_sqrt(),
        &input,
        "every 3",
    );
    let nested = Checkpoint::new(every(2));
    assert_same_steps(&plain, &nested, &input, "nested");
}

#[test]
fn dropout_and_stochastic_depth_inside_segments_give_bit_identical_steps_in_f32_and_f64() {
    same_steps_with_and_without_checkpointing::<f32>();
    same_steps_with_and_without_checkpointing::<f64>();
}

#[test]
fn a_checkpointed_conv_net_keeps_its_gradients_and_batch_norm_statistics() {
    let stack = || -> Stack<BasicConvBlock<f64>> {
        let mut rng = seeded_rng(4);
        (0..4)
            .map(|_| Box::new(BasicConvBlock::new(3, 3, 1, &mut rng)))
            .collect()
    };
    let (plain, checkpointed) = (stack(), stack().checkpoint_every(2));
    assert_same_steps(&plain, &checkpointed, &[2, 3, 6, 6], "conv blocks");
    // Two steps each, so the running statistics were updated twice: once per step, not
    // once more by each recomputation.
    let stats = |m: &dyn Module<f64>| -> Vec<Vec<f64>> {
        let buffers: Vec<(String, Buffer<f64>)> = m.named_buffers();
        buffers.iter().map(|(_, b)| b.value().to_vec()).collect()
    };
    assert_eq!(stats(&checkpointed), stats(&plain));
    assert_ne!(
        stats(&plain),
        stats(&stack()),
        "the steps moved the statistics"
    );
}

/// A layer that uses a parameter its `named_parameters` does not list.
struct Forgetful {
    listed: Param<f64>,
    unlisted: Param<f64>,
}

impl Module<f64> for Forgetful {
    fn forward<'t>(&self, cx: &Ctx<'t, f64>, x: &Var<'t, f64>) -> Var<'t, f64> {
        &(x * &cx.param(&self.listed)) * &cx.param(&self.unlisted)
    }

    fn named_parameters(&self) -> Vec<(String, Param<f64>)> {
        vec![("listed".into(), self.listed.clone())]
    }
}

#[test]
fn a_parameter_missing_from_named_parameters_is_an_error_not_a_lost_gradient() {
    let layer = Checkpoint::new(Forgetful {
        listed: Param::new(Tensor::scalar(2.0)),
        unlisted: Param::new(Tensor::scalar(3.0)),
    });
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = cx.input(Tensor::scalar(1.0));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layer.forward(&cx, &x)));
    let payload = result.expect_err("the unlisted parameter is refused");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("not one of its parameters"), "{message}");
    assert!(message.contains("Param#"), "{message}");
}

#[test]
fn checkpointing_keeps_names_and_evaluation() {
    let plain = noisy_stack::<f32>(5);
    let segmented: Segmented<NoisyBlock<f32>> = noisy_stack::<f32>(5).checkpoint_every(2);
    let names = |m: &dyn Module<f32>| -> Vec<String> {
        m.named_parameters().into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(&segmented), names(&plain));
    assert_eq!(segmented.segments(), 3);
    let wrapped = Checkpoint::new(noisy_stack::<f32>(5));
    assert_eq!(names(&wrapped), names(&plain));
    // In evaluation nothing is random or recorded differently: the same outputs.
    let eval = |m: &dyn Module<f32>| {
        let tape = Tape::new();
        let cx = Ctx::eval(&tape);
        let x = cx.input(Tensor::uniform(&[4, 8], -1.0, 1.0, &mut seeded_rng(1)));
        m.forward(&cx, &x).value().to_vec()
    };
    assert_eq!(eval(&segmented), eval(&plain));
    assert!(Segmented::try_new(noisy_stack::<f32>(2), 0).is_err());
}

#[test]
fn a_shape_error_inside_a_segment_is_returned_naming_the_layer_and_the_line() {
    use autograd::Error;
    use nn::Linear;
    let mut rng = seeded_rng(0);
    let widths = [(4, 4), (4, 4), (4, 4), (3, 4)]; // layer 3 expects 3 features
    let stack: Stack<Linear<f64>> = widths
        .iter()
        .map(|&(i, o)| Box::new(Linear::new(i, o, true, &mut rng)))
        .collect();
    let segmented = stack.checkpoint_every(2);
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = cx.input(Tensor::ones(&[2, 4]));
    let line = line!() + 1;
    let err = segmented.try_forward(&cx, &x).unwrap_err();
    let Error::InLayer { index, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*index, 3, "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{line}:", file!())),
        "{err}"
    );

    let wrapped = Checkpoint::new(Linear::<f64>::new(3, 4, true, &mut rng));
    let line = line!() + 1;
    let err = wrapped.try_forward(&cx, &x).unwrap_err();
    assert!(
        err.to_string().contains(&format!("{}:{line}:", file!())),
        "{err}"
    );
}

#[test]
fn a_sequential_in_segments_gives_the_same_steps_and_names() {
    use nn::{Linear, Relu, Sequential, Tanh};
    let model = || {
        let mut rng = seeded_rng(5);
        Sequential::<f64>::new()
            .push(Linear::new(8, 8, true, &mut rng))
            .push(Relu)
            .push(Dropout::new(0.2))
            .push(Linear::new(8, 8, true, &mut rng))
            .push(Tanh)
    };
    let segmented = model().checkpoint_every(2);
    assert_same_steps(&model(), &segmented, &[16, 8], "sequential");
    let names = |m: &dyn Module<f64>| -> Vec<String> {
        m.named_parameters().into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(names(&segmented), names(&model()));
    assert_eq!(model().checkpoint_sqrt().layers_per_segment(), 3);
}
