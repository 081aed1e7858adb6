//! Optimizers update in place: after the first step (which makes their state), a step of
//! SGD (plain, momentum, Nesterov with weight decay), Adam or AdamW in the training loop of
//! `nn::value_and_grad` allocates nothing at all — no parameter-sized buffer, no gradient
//! copy — and every parameter keeps its buffer address. Counted with autograd's counting
//! global allocator, with the tensor buffer cache off so that a copy could not hide in it.

use autograd::alloc_meter::{Allocations, CountingAllocator, count_allocations};
use autograd::buffer_pool::uncached;
use autograd::{Tensor, seeded_rng};
use nn::{Adam, AdamW, Init, Module, Optimizer, Param, ParamGrads, ResidualBlock, Sgd, loss};
use std::sync::Mutex;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The counters are global: the tests of this binary take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const WIDTH: usize = 32;

/// One training step's gradients for `model`, from the loop users write.
fn gradients(model: &ResidualBlock<f32>, step: u64) -> (f32, ParamGrads<f32>) {
    let x = Tensor::uniform(&[8, WIDTH], -1.0, 1.0, &mut seeded_rng(1));
    let y = Tensor::uniform(&[8, WIDTH], -1.0, 1.0, &mut seeded_rng(2));
    nn::value_and_grad(step, |cx| {
        let out = model.forward(cx, &cx.input(x.clone()));
        loss::mse(&out, &cx.input(y.clone()))
    })
}

fn addresses(params: &[Param<f32>]) -> Vec<usize> {
    params
        .iter()
        .map(|p| p.value().data().as_ptr() as usize)
        .collect()
}

/// The allocations `opt.step` makes, every buffer counted (the cache is off), with the
/// size of the smallest parameter as the threshold of `at_least_min`.
fn step_allocations(opt: &mut dyn Optimizer<f32>, grads: &ParamGrads<f32>) -> Allocations {
    let smallest = grads
        .iter()
        .map(|(_, g)| g.numel() * size_of::<f32>())
        .min()
        .unwrap();
    uncached(|| count_allocations(smallest, || opt.step(grads)))
        .1
        .expect("the counting allocator is installed")
}

#[test]
fn optimizer_steps_allocate_nothing_and_keep_every_buffer() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    autograd::set_num_threads(1);
    type Make = fn(Vec<Param<f32>>) -> Box<dyn Optimizer<f32>>;
    let optimizers: [(&str, Make); 5] = [
        ("sgd", |p| Box::new(Sgd::new(p, 0.01))),
        ("sgd+momentum", |p| {
            Box::new(Sgd::new(p, 0.01).momentum(0.9))
        }),
        ("sgd+nesterov+decay", |p| {
            Box::new(
                Sgd::new(p, 0.01)
                    .momentum(0.9)
                    .nesterov(true)
                    .weight_decay(1e-4),
            )
        }),
        ("adam", |p| Box::new(Adam::new(p, 1e-3))),
        ("adamw", |p| Box::new(AdamW::new(p, 1e-3))),
    ];
    for (name, make) in optimizers {
        let model = ResidualBlock::<f32>::new(WIDTH, Init::he(), &mut seeded_rng(0));
        let params = model.parameters();
        let mut opt = make(params.clone());
        // Warm-up: the first step makes the optimizer's state.
        let (first_loss, grads) = gradients(&model, 0);
        opt.step(&grads);
        let before = addresses(&params);
        let mut last_loss = first_loss;
        for step in 1..4 {
            let (loss, grads) = gradients(&model, step);
            let seen = step_allocations(opt.as_mut(), &grads);
            assert_eq!(
                (seen.count, seen.at_least_min),
                (0, 0),
                "{name}, step {step}: {seen:?}"
            );
            assert_eq!(addresses(&params), before, "{name}, step {step}: moved");
            last_loss = loss;
        }
        assert!(
            last_loss < first_loss,
            "{name}: {first_loss} -> {last_loss}"
        );
    }
}

#[test]
fn a_step_while_a_tape_holds_the_parameters_copies_them() {
    // The counter above would see a copy: with the tape of the step still alive, each
    // parameter it holds is copied before it is written (copy-on-write).
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = ResidualBlock::<f32>::new(WIDTH, Init::he(), &mut seeded_rng(0));
    let params = model.parameters();
    let mut opt = Sgd::new(params.clone(), 0.01);
    let before = addresses(&params);
    let tape = autograd::Tape::new();
    let cx = nn::Ctx::train(&tape, 0);
    let out = model.forward(&cx, &cx.input(Tensor::ones(&[8, WIDTH])));
    let grads = cx.param_grads(&out.sum().backward_leaves());
    let seen = step_allocations(&mut opt, &grads);
    assert_eq!(seen.at_least_min, params.len(), "{seen:?}");
    let after = addresses(&params);
    assert!(before.iter().zip(&after).all(|(b, a)| b != a));
}
