//! Shape arithmetic never wraps, and a result too large for memory is an error.
//!
//! Every size here is computed with checked arithmetic in the library, so these tests
//! behave the same in debug and release builds (run them with `cargo test --release` too:
//! a product that wrapped in release would return a wrong `Ok` here, and one that was
//! unchecked in debug would panic). Large dimensions come with a zero dimension elsewhere
//! or as an op's output, so that no test allocates more than a few megabytes.
//!
//! Allocation failures use sizes of at least 2⁴⁸ bytes (256 TiB): beyond the user address
//! space of a 64-bit Linux process, so the system refuses them whatever its overcommit
//! policy.

use autograd::{Error, Tape, Tensor, Var, checked_numel, seeded_rng};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The example: 3 · 0xAAAA_AAAA_AAAA_AAAB ≡ 1 (mod 2⁶⁴).
const WRAPS_TO_ONE: [usize; 3] = [1, 3, 0xAAAA_AAAA_AAAA_AAAB];

/// 2⁴⁶ `f32` elements: 256 TiB, refused by the system allocator.
const TOO_MANY_F32: usize = 1 << 46;

/// Asserts that `r` is an error of the kind `is_kind` accepts, from `op`, whose message
/// starts with `"{op}: {start}"` and names this file as the caller; returns the message.
fn expect_error(
    r: Result<impl std::fmt::Debug, Error>,
    op: &str,
    is_kind: fn(&Error) -> bool,
    start: &str,
) -> String {
    match r {
        Err(e) if is_kind(&e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{op}: {start}")), "{msg}");
            assert!(msg.contains("sizes.rs"), "{msg} does not name the caller");
            msg
        }
        other => panic!("{op}: expected {start}…, got {other:?}"),
    }
}

fn size_overflow(r: Result<impl std::fmt::Debug, Error>, op: &str) -> String {
    expect_error(
        r,
        op,
        |e| matches!(e, Error::SizeOverflow { .. }),
        "shape [",
    )
}

fn alloc_failure(r: Result<impl std::fmt::Debug, Error>, op: &str) -> String {
    expect_error(
        r,
        op,
        |e| matches!(e, Error::Alloc { .. }),
        "cannot allocate ",
    )
}

#[test]
fn a_shape_whose_element_count_wraps_is_refused_by_every_constructor() {
    assert_eq!(checked_numel(&WRAPS_TO_ONE), None);
    let msg = size_overflow(Tensor::from_vec(vec![1.0f32], &WRAPS_TO_ONE), "from_vec");
    assert!(msg.contains("12297829382473034411"), "{msg}");
    size_overflow(Tensor::<f64>::try_zeros(&WRAPS_TO_ONE), "zeros");
    size_overflow(Tensor::<f64>::try_ones(&WRAPS_TO_ONE), "ones");
    size_overflow(Tensor::try_full(&WRAPS_TO_ONE, 2.0f32), "full");
    size_overflow(Tensor::try_from_fn(&WRAPS_TO_ONE, |_| 0.0f32), "from_fn");
    size_overflow(Tensor::<f32>::try_eye(1 << 32), "eye");
    size_overflow(Tensor::<f64>::try_arange(usize::MAX), "arange");
    let mut rng = seeded_rng(0);
    size_overflow(
        Tensor::<f32>::try_uniform(&WRAPS_TO_ONE, 0.0, 1.0, &mut rng),
        "uniform",
    );
    size_overflow(
        Tensor::<f32>::try_normal(&WRAPS_TO_ONE, 0.0, 1.0, &mut rng),
        "normal",
    );
    // Indices too: a `Tensor<usize>` of that shape.
    size_overflow(Tensor::from_vec(vec![0usize], &WRAPS_TO_ONE), "from_vec");
}

#[test]
fn a_byte_size_beyond_isize_max_is_refused() {
    // 2⁶² elements fit in usize, but not 2⁶² · 4 bytes.
    size_overflow(Tensor::<f32>::try_zeros(&[1 << 62]), "zeros");
    // 2⁶⁰ f32 elements is 2⁶² bytes: not an overflow, but no system has that memory.
    alloc_failure(Tensor::<f32>::try_zeros(&[1 << 60]), "zeros");
}

#[test]
fn an_empty_shape_with_overflowing_strides_is_refused() {
    // It holds no element, but its strides overflow (PyTorch: "Stride calculation
    // overflowed"); whichever side the zero is on.
    for shape in [[0, 1 << 62, 1 << 62], [1 << 62, 1 << 62, 0]] {
        assert_eq!(checked_numel(&shape), Some(0));
        size_overflow(Tensor::from_vec(Vec::<f64>::new(), &shape), "from_vec");
    }
    // An empty shape whose other dimensions fit is a tensor like any other.
    let t = Tensor::<f64>::zeros(&[0, 1 << 29, 1 << 30]);
    assert_eq!((t.numel(), t.shape()), (0, &[0, 1 << 29, 1 << 30][..]));
    // The bound is on bytes: 2⁶⁰ f64 is 2⁶³ bytes, one more than an allocation may hold.
    size_overflow(Tensor::<f64>::try_zeros(&[0, 1 << 30, 1 << 30]), "zeros");
}

#[test]
fn the_panicking_constructors_panic_with_the_same_message() {
    let panic = catch_unwind(|| Tensor::<f32>::zeros(&WRAPS_TO_ONE)).expect_err("zeros");
    let text = panic.downcast_ref::<String>().expect("a message");
    let want = Tensor::<f32>::try_zeros(&WRAPS_TO_ONE)
        .unwrap_err()
        .to_string();
    assert_eq!(text.split(" (at ").next(), want.split(" (at ").next());
    let panic = catch_unwind(|| Tensor::<f32>::zeros(&[TOO_MANY_F32])).expect_err("zeros");
    let text = panic.downcast_ref::<String>().expect("a message");
    assert!(
        text.starts_with("zeros: cannot allocate 281474976710656 bytes for shape [70368744177664]"),
        "{text}"
    );
}

/// An empty `[0, a, b]` operand, which costs nothing however large `a` and `b` are.
fn empty(dims: &[usize]) -> Tensor<f32> {
    Tensor::zeros(dims)
}

#[test]
fn ops_whose_output_shape_overflows_return_an_error() {
    let big = 1 << 40;
    // matmul: [2⁴⁰, 0] · [0, 2⁴⁰] would be [2⁴⁰, 2⁴⁰] (zeros): 2⁸⁰ elements.
    let (a, b) = (empty(&[big, 0]), empty(&[0, big]));
    size_overflow(a.try_matmul(&b), "matmul");
    size_overflow(a.try_linear(&empty(&[big, 0]), None), "linear");
    // Broadcasting two empty operands: [0, 2⁴⁰, 1] + [0, 1, 2⁴⁰] → [0, 2⁴⁰, 2⁴⁰].
    let (x, y) = (empty(&[0, big, 1]), empty(&[0, 1, big]));
    size_overflow(x.try_add(&y), "add");
    size_overflow(x.try_maximum(&y), "maximum");
    size_overflow(
        Tensor::<f32>::zeros(&[1]).try_broadcast_to(&[big, big]),
        "broadcast_to",
    );
    size_overflow(empty(&[0]).try_reshape(&[0, big, big]), "reshape");
    // The reshape error for a count that wraps to the right number of elements.
    size_overflow(
        Tensor::<f32>::zeros(&[1]).try_reshape(&WRAPS_TO_ONE),
        "reshape",
    );
    // concat: four [0, 2⁵⁹] (f64: 2⁶² bytes' worth of strides) along axis 1 → 2⁶¹.
    let part = Tensor::<f64>::zeros(&[0, 1 << 59]);
    size_overflow(Tensor::try_concat(&[&part; 4], 1), "concat");
    let long = Tensor::<f64>::zeros(&[0, usize::MAX >> 5]);
    size_overflow(Tensor::try_concat(&[&long; 40], 1), "concat");
    // index_select: 2¹⁴ picks along an axis of [0, 2⁵⁰, 3] → [0, 2⁵⁰, 2¹⁴].
    let wide = empty(&[0, 1 << 50, 3]);
    size_overflow(wide.try_index_select(2, &vec![1; 1 << 14]), "index_select");
    // The same through the tape.
    let tape = Tape::<f32>::new();
    let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
    size_overflow(va.try_matmul(&vb), "matmul");
    let (vx, vy) = (tape.var(x.clone()), tape.var(y.clone()));
    size_overflow(vx.try_mul(&vy), "mul");
}

/// A batch of 2³³ empty matrices is an empty product at once, not 2³³ empty GEMMs (the
/// op fuzzer's `hang-matmul-of-enormous-empty-batch.bin`).
#[test]
fn a_product_of_enormous_empty_batches_runs_no_gemm() {
    let a = empty(&[2, 1 << 32, 0, 2]);
    let start = std::time::Instant::now();
    let p = a.try_matmul_t(false, &a, true).expect("an empty product");
    assert_eq!(p.shape(), &[2, 1 << 32, 0, 0]);
    // [0, 2]·[2, 0] is [0, 0] in each of the 2³³ matrices; broadcast batches too.
    let b = empty(&[1, 1 << 32, 2, 0]);
    assert_eq!(a.matmul(&b).shape(), &[2, 1 << 32, 0, 0]);
    // 2³³ loop iterations take seconds even in release builds; none are run.
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn index_arithmetic_never_wraps() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 3]));
    // The case: usize::MAX + 2 wraps to 1, which would fit.
    for (start, len) in [(usize::MAX, 2), (1, usize::MAX), (usize::MAX, usize::MAX)] {
        match x.try_narrow(1, start, len) {
            Err(Error::Range {
                op: "narrow",
                size: 3,
                ..
            }) => {}
            other => panic!("narrow({start}, {len}): {other:?}"),
        }
        assert!(x.value().try_narrow(1, start, len).is_err());
    }
    assert!(matches!(
        x.try_index_select(1, &[usize::MAX]),
        Err(Error::Index {
            op: "index_select",
            ..
        })
    ));
    let index = Tensor::from_vec(vec![usize::MAX, 0], &[2, 1]).unwrap();
    assert!(matches!(
        x.try_gather(1, &index),
        Err(Error::Index { op: "gather", .. })
    ));
    assert!(matches!(
        x.value().try_get(&[1, usize::MAX]),
        Err(Error::Index { .. })
    ));
    assert!(x.try_sum_axes(&[usize::MAX], false).is_err());
    assert!(x.try_sum_axes(&[i64::MIN], false).is_err()); // −rank − huge: no wrap either
    assert!(Var::try_stack(&[&x, &x], usize::MAX).is_err());
    assert!(x.try_permute(&[usize::MAX, 0]).is_err());
}

#[test]
fn convolution_and_pooling_sizes_are_checked() {
    let x = Tensor::<f32>::ones(&[1, 1, 2, 2]);
    let w = Tensor::<f32>::ones(&[1, 1, 1, 1]);
    // Padding whose padded size overflows.
    for padding in [
        (usize::MAX / 2, 0),
        (0, usize::MAX),
        (usize::MAX, usize::MAX),
    ] {
        let msg = x
            .try_conv2d(&w, None, (1, 1), padding)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("conv2d: padding") && msg.contains("too large"),
            "{msg}"
        );
        let msg = x.try_max_pool2d((usize::MAX, usize::MAX), (1, 1), padding);
        assert!(msg.is_err(), "{msg:?}");
    }
    // Padding that fits, with an output of 2⁶⁴ + … elements.
    size_overflow(x.try_conv2d(&w, None, (1, 1), (1 << 31, 1 << 31)), "conv2d");
    // Huge strides and kernels are fine when the output is small.
    let y = x
        .try_conv2d(&w, None, (usize::MAX, usize::MAX), (0, 0))
        .unwrap();
    assert_eq!(y.shape(), &[1, 1, 1, 1]);
    let k = 1 << 40;
    let pooled = x
        .try_max_pool2d((k, k), (usize::MAX, 1), (k / 2, k / 2))
        .unwrap();
    assert_eq!(pooled.shape(), &[1, 1, 1, 3]);
    assert_eq!(pooled.to_vec(), vec![1.0; 3]);
    // Average pooling builds a kh × kw kernel: too large, an error.
    size_overflow(
        x.try_avg_pool2d((k, k), (1, 1), (k / 2, k / 2)),
        "avg_pool2d",
    );
    // The hand-written-backward forms check the shapes they build from arguments.
    let g = Tensor::<f32>::ones(&[1, 1, 1, 1]);
    assert!(
        g.try_conv2d_input_grad(&w, (usize::MAX, 1), (1, 1), (0, 0))
            .is_err()
    );
    assert!(
        g.try_conv2d_weight_grad(&x, (1 << 62, 1 << 62), (1, 1), (0, 0))
            .is_err()
    );
}

#[test]
fn results_too_large_for_memory_are_alloc_errors() {
    // 2²³ × 2²³ f32 zeros: 256 TiB, from operands that hold nothing.
    let (a, b) = (empty(&[1 << 23, 0]), empty(&[0, 1 << 23]));
    let msg = alloc_failure(a.try_matmul(&b), "matmul");
    assert!(msg.contains("[8388608, 8388608]"), "{msg}");
    alloc_failure(a.try_linear(&empty(&[1 << 23, 0]), None), "linear");
    let one = Tensor::<f32>::ones(&[1]);
    alloc_failure(one.try_broadcast_to(&[TOO_MANY_F32]), "broadcast_to");
    let tape = Tape::<f32>::new();
    let va = tape.var(a.clone());
    alloc_failure(va.try_matmul(&tape.var(b.clone())), "matmul");
    // A convolution whose output is 16 MiB but whose column matrix for one image is 256
    // TiB: a 4096 × 4096 kernel at each of 2048 × 2048 positions.
    let x = Tensor::<f32>::ones(&[1, 1, 1, 1]);
    let w = Tensor::<f32>::zeros(&[1, 1, 4096, 4096]);
    let msg = alloc_failure(x.try_conv2d(&w, None, (1, 1), (3071, 3071)), "conv2d");
    assert!(msg.contains("[16777216, 4194304]"), "{msg}");
    // The panicking forms say the same.
    let panic = catch_unwind(AssertUnwindSafe(|| a.matmul(&b))).expect_err("matmul");
    let text = panic.downcast_ref::<String>().expect("a message");
    assert!(text.starts_with("matmul: cannot allocate"), "{text}");
    // Nothing is broken afterwards: the buffer cache still serves.
    let c = Tensor::<f32>::ones(&[64, 64]).matmul(&Tensor::ones(&[64, 64]));
    assert_eq!(c.get(&[3, 5]), 64.0);
}
