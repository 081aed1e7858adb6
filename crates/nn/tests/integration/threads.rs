//! Models are `Send + Sync`: every public layer, block and container type, checked at
//! compile time, and a model shared by two threads through an `Arc`.

use autograd::{Tensor, seeded_rng};
use nn::builder::{Branch, PlainLayer};
use nn::crosscheck::{Mirrored, MirroredUnit};
use nn::{
    Activation, AvgPool2d, BasicConvBlock, BatchNorm1d, BatchNorm2d, Buffer, Conv2d,
    ConvProjection, Dropout, Flatten, Gelu, GlobalAvgPool, HiddenUnit, Init, LayerNorm, LeakyRelu,
    Linear, MaxPool2d, Mlp, MlpConfig, Module, NormLayer, Param, PreActBlock, ProjectionBlock,
    Relu, Residual, ResidualBlock, ResidualUnit, Sequential, Sigmoid, Stack, StochasticDepth, Tanh,
};
use std::sync::Arc;

/// Compiles only if `M` is `Send + Sync`.
const fn thread_safe<M: Send + Sync + ?Sized>() {}

/// Every public module type, for both element types where it is generic: a type that
/// stops being `Send + Sync` fails to compile here, naming itself.
const _: () = {
    thread_safe::<Linear<f32>>();
    thread_safe::<Linear<f64>>();
    thread_safe::<Conv2d<f32>>();
    thread_safe::<Conv2d<f64>>();
    thread_safe::<BatchNorm1d<f32>>();
    thread_safe::<BatchNorm2d<f64>>();
    thread_safe::<LayerNorm<f32>>();
    thread_safe::<NormLayer<f64>>();
    thread_safe::<Dropout>();
    thread_safe::<StochasticDepth<ResidualBlock<f32>, f32>>();
    thread_safe::<Activation>();
    thread_safe::<Relu>();
    thread_safe::<Sigmoid>();
    thread_safe::<Tanh>();
    thread_safe::<Gelu>();
    thread_safe::<LeakyRelu>();
    thread_safe::<MaxPool2d>();
    thread_safe::<AvgPool2d>();
    thread_safe::<GlobalAvgPool>();
    thread_safe::<Flatten>();
    thread_safe::<ResidualBlock<f32>>();
    thread_safe::<ProjectionBlock<f64>>();
    thread_safe::<Residual<Sequential<f32>, f32>>();
    thread_safe::<PreActBlock<f32>>();
    thread_safe::<BasicConvBlock<f32>>();
    thread_safe::<BasicConvBlock<f64, Activation>>();
    thread_safe::<ConvProjection<f32>>();
    thread_safe::<Mlp<f32>>();
    thread_safe::<PlainLayer<f32>>();
    thread_safe::<Branch<f32>>();
    thread_safe::<HiddenUnit<f64>>();
    // Containers of trait objects: thread-safe because `Module` requires it.
    thread_safe::<Sequential<f32>>();
    thread_safe::<Sequential<f64>>();
    thread_safe::<Stack<dyn Module<f32>>>();
    thread_safe::<Stack<dyn ResidualUnit<f32>>>();
    thread_safe::<Stack<dyn Mirrored<f64>>>();
    thread_safe::<Stack<dyn MirroredUnit<f64>>>();
    thread_safe::<Box<dyn Module<f32>>>();
    thread_safe::<dyn Module<f64>>();
    // The handles a module is made of.
    thread_safe::<Param<f32>>();
    thread_safe::<Buffer<f64>>();
};

#[test]
fn a_model_runs_on_another_thread_and_behind_an_arc() {
    let mut rng = seeded_rng(0);
    let model = Arc::new(
        Sequential::<f32>::new()
            .push(Linear::new(3, 8, true, &mut rng))
            .push(Relu)
            .push(ResidualBlock::new(8, Init::he(), &mut rng))
            .push(BatchNorm1d::new(8))
            .push(Linear::new(8, 2, true, &mut rng)),
    );
    let x = Tensor::uniform(&[5, 3], -1.0, 1.0, &mut rng);
    let here = model.predict(&x);
    let worker = {
        let (model, x) = (Arc::clone(&model), x.clone());
        std::thread::spawn(move || model.predict(&x))
    };
    assert_eq!(worker.join().unwrap(), here);
    // A whole model moves to a worker thread, too.
    let mlp: Mlp<f64> = MlpConfig::residual(3, 4, 2, 2).build(&mut rng);
    let n = std::thread::spawn(move || mlp.num_parameters())
        .join()
        .unwrap();
    assert_eq!(n, 3 * 4 + 4 + 2 * 2 * (4 * 4 + 4) + 4 * 2 + 2);
}
