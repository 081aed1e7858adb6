//! Every misuse is a clear error: one test per case, asserting the variant and the key
//! facts of the message — the op, the shapes, and the caller's line in this file.

use autograd::{Error, Tape, Tensor, Var};

/// Asserts that `$e` is an `Err` matching `$pat` whose message contains each fact and
/// names this file as the caller.
macro_rules! misuse {
    ($name:ident, |$v:ident| $e:expr, $pat:pat, [$($fact:expr),*]) => {
        #[test]
        fn $name() {
            let tape = Tape::<f64>::new();
            let $v = |shape: &[usize]| tape.var(Tensor::zeros(shape));
            let _ = &$v;
            let result = $e;
            let err: Error = result.err().expect("misuse must be an error");
            assert!(matches!(err, $pat), "wrong variant: {err:?}");
            let msg = err.to_string();
            $(assert!(msg.contains($fact), "{msg:?} lacks {:?}", $fact);)*
            assert!(msg.contains("misuse.rs"), "{msg:?} does not name the caller's line");
        }
    };
}

misuse!(
    data_length,
    |v| Tensor::from_vec(vec![1.0f64; 5], &[2, 3]),
    Error::DataLength {
        len: 5,
        expected: 6,
        ..
    },
    ["from_vec", "5 elements", "[2, 3]"]
);
misuse!(
    add_shapes_do_not_broadcast,
    |v| v(&[2, 3]).try_add(&v(&[4])),
    Error::Broadcast { op: "add", .. },
    ["add", "[2, 3]", "[4]"]
);
misuse!(
    mul_shapes_do_not_broadcast,
    |v| v(&[2, 3]).try_mul(&v(&[3, 3])),
    Error::Broadcast { op: "mul", .. },
    ["mul", "[2, 3]", "[3, 3]"]
);
misuse!(
    matmul_inner_dimensions,
    |v| v(&[2, 3]).try_matmul(&v(&[4, 5])),
    Error::MatMul { .. },
    ["matmul", "[2, 3]", "[4, 5]", "inner dimensions differ"]
);
misuse!(
    matmul_of_a_vector_of_the_wrong_length,
    |v| v(&[4]).try_matmul(&v(&[3, 2])),
    Error::MatMul { .. },
    ["matmul", "[4] by [3, 2]", "inner dimensions differ"]
);
misuse!(
    matmul_of_a_scalar,
    |v| v(&[]).try_matmul(&v(&[3])),
    Error::MatMul { .. },
    ["matmul", "[] by [3]", "at least one dimension"]
);
misuse!(
    matmul_batch_dimensions,
    |v| v(&[2, 2, 3]).try_matmul(&v(&[3, 3, 2])),
    Error::MatMul { .. },
    [
        "[2, 2, 3]",
        "[3, 3, 2]",
        "batch dimensions do not broadcast"
    ]
);
misuse!(
    linear_weight_rank,
    |v| v(&[2, 3]).try_linear(&v(&[3]), None),
    Error::Rank { op: "linear", .. },
    ["linear", "[3]"]
);
misuse!(
    linear_in_features,
    |v| v(&[2, 3]).try_linear(&v(&[4, 2]), None),
    Error::MatMul { op: "linear", .. },
    ["linear", "[2, 3]", "[4, 2]"]
);
misuse!(
    linear_bias_shape,
    |v| v(&[2, 3]).try_linear(&v(&[4, 3]), Some(&v(&[3]))),
    Error::ShapeMismatch { op: "linear", .. },
    ["linear", "[4]", "[3]"]
);
misuse!(
    reshape_element_count,
    |v| v(&[2, 3]).try_reshape(&[4, 2]),
    Error::Reshape { .. },
    ["reshape", "[2, 3]", "6 elements", "[4, 2]", "8 elements"]
);
misuse!(
    permute_not_a_permutation,
    |v| v(&[2, 3]).try_permute(&[1, 1]),
    Error::InvalidArgument { op: "permute", .. },
    ["permute", "[1, 1]", "[2, 3]"]
);
misuse!(
    broadcast_to_impossible,
    |v| v(&[2, 3]).try_broadcast_to(&[4, 3]),
    Error::Broadcast {
        op: "broadcast_to",
        ..
    },
    ["broadcast_to", "[2, 3]", "[4, 3]"]
);
misuse!(
    sum_axis_out_of_range,
    |v| v(&[2, 3]).try_sum_axes(&[2], false),
    Error::Axis {
        op: "sum",
        axis: 2,
        ..
    },
    ["sum", "axis 2", "[2, 3]"]
);
misuse!(
    negative_axis_out_of_range,
    |v| v(&[2, 3]).try_sum_axes(&[-3], false),
    Error::Axis {
        op: "sum",
        axis: -3,
        ..
    },
    ["sum", "axis -3", "[2, 3]"]
);
misuse!(
    sum_over_an_axis_named_twice,
    |v| v(&[2, 3]).try_sum_axes(&[1, -1], false),
    Error::InvalidArgument { op: "sum", .. },
    ["sum", "axis 1 is named twice in [1, -1]", "[2, 3]"]
);
misuse!(
    mean_axis_out_of_range,
    |v| v(&[2, 3]).try_mean_axes(&[0, 7], true),
    Error::Axis {
        op: "mean",
        axis: 7,
        ..
    },
    ["mean", "axis 7", "[2, 3]"]
);
misuse!(
    mean_over_an_axis_named_twice,
    |v| v(&[2, 3]).try_mean_axes(&[0, 0], true),
    Error::InvalidArgument { op: "mean", .. },
    ["mean", "axis 0 is named twice", "[2, 3]"]
);
misuse!(
    logsumexp_axis_out_of_range,
    |v| v(&[2, 3]).try_logsumexp(&[2], false),
    Error::Axis {
        op: "logsumexp",
        axis: 2,
        ..
    },
    ["logsumexp", "axis 2", "[2, 3]"]
);
misuse!(
    max_of_nothing,
    |v| v(&[0, 3]).try_max(),
    Error::InvalidArgument { op: "max", .. },
    ["max", "[0, 3] is empty", "no maximum"]
);
misuse!(
    argmin_over_an_empty_axis,
    |v| v(&[3, 0]).try_argmin_axis(-1, false),
    Error::InvalidArgument { op: "argmin", .. },
    ["argmin", "axis 1 of shape [3, 0] is empty", "no minimum"]
);
misuse!(
    pow_shapes_do_not_broadcast,
    |v| v(&[2, 3]).try_pow(&v(&[2])),
    Error::Broadcast { op: "pow", .. },
    ["pow", "[2, 3]", "[2]"]
);
misuse!(
    where_mask_not_0_or_1,
    |v| Var::try_where_(
        &Tensor::from_vec(vec![1.0, 2.0], &[2]).expect("shape"),
        &v(&[2]),
        &v(&[2])
    ),
    Error::InvalidArgument { op: "where", .. },
    ["where", "holds 2"]
);
misuse!(
    where_shapes_do_not_broadcast,
    |v| Var::try_where_(
        &Tensor::from_vec(vec![true; 3], &[3]).expect("shape"),
        &v(&[2]),
        &v(&[2])
    ),
    Error::Broadcast { op: "where", .. },
    ["where", "[3]", "[2]"]
);
misuse!(
    masked_select_mask_does_not_broadcast,
    |v| v(&[2, 3]).try_masked_select(&Tensor::from_vec(vec![true; 2], &[2]).expect("shape")),
    Error::Broadcast {
        op: "masked_select",
        ..
    },
    ["masked_select", "[2, 3]", "[2]"]
);
misuse!(
    max_axis_out_of_range,
    |v| v(&[2, 3]).try_max_axis(3, false),
    Error::Axis { op: "max", .. },
    ["max", "axis 3", "[2, 3]"]
);
misuse!(
    transpose_axis_out_of_range,
    |v| v(&[2, 3]).try_transpose(0, 2),
    Error::Axis {
        op: "transpose",
        axis: 2,
        ..
    },
    ["transpose", "axis 2", "[2, 3]"]
);
misuse!(
    max_over_an_empty_axis,
    |v| v(&[2, 0]).try_max_axis(1, false),
    Error::InvalidArgument { op: "max", .. },
    ["max", "empty", "[2, 0]"]
);
misuse!(
    softmax_axis_out_of_range,
    |v| v(&[2, 3]).try_softmax(2),
    Error::Axis { op: "softmax", .. },
    ["softmax", "axis 2"]
);
misuse!(
    log_softmax_axis_out_of_range,
    |v| v(&[3]).try_log_softmax(1),
    Error::Axis {
        op: "log_softmax",
        ..
    },
    ["log_softmax", "axis 1", "[3]"]
);
misuse!(
    narrow_past_the_end,
    |v| v(&[2, 3]).try_narrow(-1, 2, 2),
    Error::Range {
        op: "narrow",
        axis: 1,
        start: 2,
        len: 2,
        size: 3,
        ..
    },
    ["narrow", "start 2 + length 2 > size 3 of axis 1"]
);
misuse!(
    narrow_axis_out_of_range,
    |v| v(&[2, 3]).try_narrow(2, 0, 1),
    Error::Axis { op: "narrow", .. },
    ["narrow", "axis 2"]
);
misuse!(
    index_select_out_of_range,
    |v| v(&[2, 3]).try_index_select(1, &[0, 3]),
    Error::Index {
        op: "index_select",
        index: 3,
        len: 3,
        ..
    },
    ["index_select", "index 3"]
);
misuse!(
    gather_index_out_of_range,
    |v| {
        v(&[2, 3]).try_gather(
            1,
            &Tensor::from_vec(vec![0usize, 5], &[2, 1]).expect("shape"),
        )
    },
    Error::Index {
        op: "gather",
        index: 5,
        ..
    },
    ["gather", "index 5"]
);
misuse!(
    gather_index_of_the_wrong_shape,
    |v| {
        v(&[2, 3]).try_gather(
            1,
            &Tensor::from_vec(vec![0usize, 1, 2], &[3, 1]).expect("shape"),
        )
    },
    Error::InvalidArgument { op: "gather", .. },
    ["gather", "[3, 1]", "[2, 3]", "at most"]
);
misuse!(
    scatter_add_source_smaller_than_the_index,
    |v| {
        v(&[2, 3]).try_scatter_add(
            1,
            &Tensor::from_vec(vec![0usize, 1], &[1, 2]).expect("shape"),
            &v(&[1, 1]),
        )
    },
    Error::InvalidArgument {
        op: "scatter_add",
        ..
    },
    ["scatter_add", "[1, 1]", "[1, 2]"]
);
misuse!(
    concat_mismatched_shapes,
    |v| Var::try_concat(&[&v(&[2, 3]), &v(&[2, 4])], 0),
    Error::ShapeMismatch { op: "concat", .. },
    ["concat", "[2, 3]", "[2, 4]"]
);
misuse!(
    concat_nothing,
    |v| Var::<f64>::try_concat(&[], 0),
    Error::InvalidArgument { op: "concat", .. },
    ["concat", "no inputs"]
);
misuse!(
    stack_mismatched_shapes,
    |v| Var::try_stack(&[&v(&[2]), &v(&[3])], 0),
    Error::ShapeMismatch { op: "stack", .. },
    ["stack", "[2]", "[3]"]
);
misuse!(
    stack_axis_out_of_range,
    |v| Var::try_stack(&[&v(&[2]), &v(&[2])], 2),
    Error::Axis {
        op: "stack",
        axis: 2,
        ..
    },
    ["stack", "axis 2"]
);
misuse!(
    clamp_crossed_bounds,
    |v| v(&[2]).try_clamp(1.0, -1.0),
    Error::InvalidArgument { op: "clamp", .. },
    ["clamp", "lower bound 1", "upper bound -1"]
);
misuse!(
    backward_of_a_non_scalar,
    |v| v(&[2, 2]).exp().try_backward(),
    Error::NonScalarBackward { .. },
    ["backward", "[2, 2]", "backward_with"]
);
misuse!(
    backward_create_graph_of_a_non_scalar,
    |v| v(&[2, 2]).exp().try_backward_create_graph().map(|_| ()),
    Error::NonScalarBackward { .. },
    ["backward", "[2, 2]"]
);
misuse!(
    backward_steps_of_a_non_scalar,
    |v| v(&[3]).exp().try_backward_steps().map(|_| ()),
    Error::NonScalarBackward { .. },
    ["backward", "[3]"]
);
misuse!(
    backward_with_a_seed_of_the_wrong_shape,
    |v| v(&[2, 2]).exp().try_backward_with(Tensor::ones(&[4])),
    Error::ShapeMismatch {
        op: "backward_with",
        ..
    },
    ["backward_with", "[2, 2]", "[4]"]
);
misuse!(
    vars_of_two_tapes,
    |v| {
        let other = Tape::<f64>::new();
        let w = other.var(Tensor::zeros(&[2]));
        v(&[2]).try_add(&w).map(|_| ())
    },
    Error::ForeignTape { op: "add", .. },
    ["add", "different tapes"]
);
misuse!(
    get_out_of_range,
    |v| Tensor::<f64>::zeros(&[2, 2]).try_get(&[0, 2]),
    Error::Index {
        op: "get",
        index: 2,
        len: 2,
        ..
    },
    ["get", "index 2"]
);
misuse!(
    item_of_a_matrix,
    |v| Tensor::<f64>::zeros(&[2, 2]).try_item(),
    Error::ShapeMismatch { op: "item", .. },
    ["item", "[2, 2]"]
);

/// Operators panic with exactly the `try_*` form's message, naming the caller's line.
#[test]
fn operators_panic_with_the_same_message() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros(&[2, 3]));
    let b = tape.var(Tensor::zeros(&[4]));
    let expected = a.try_sub(&b).unwrap_err().to_string();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| &a - &b)).unwrap_err();
    let got = panic.downcast_ref::<String>().expect("a formatted message");
    // The same text but for the column of the call.
    assert_eq!(got.split(" (at").next(), expected.split(" (at").next());
    assert!(got.contains("misuse.rs"));
}

/// Each panicking form panics with its `try_` form's message (but for the column).
#[test]
fn panicking_forms_panic_with_their_try_forms_message() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 3]));
    let same = |expected: Error, f: &dyn Fn()| {
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        let got = panic.downcast_ref::<String>().expect("a formatted message");
        let expected = expected.to_string();
        assert_eq!(got.split(" (at").next(), expected.split(" (at").next());
        assert!(got.contains("misuse.rs"), "{got}");
    };
    same(x.try_transpose(0, 5).unwrap_err(), &|| {
        x.transpose(0, 5);
    });
    same(x.value().try_transpose(-3, 0).unwrap_err(), &|| {
        x.value().transpose(-3, 0);
    });
    same(x.try_narrow(0, 1, 2).unwrap_err(), &|| {
        x.narrow(0, 1, 2);
    });
    same(x.try_backward_create_graph().err().unwrap(), &|| {
        x.backward_create_graph();
    });
    same(x.try_backward_steps().err().unwrap(), &|| {
        x.backward_steps();
    });
    let empty = tape.var(Tensor::zeros(&[0]));
    same(empty.try_max().unwrap_err(), &|| {
        empty.max();
    });
    same(x.value().try_clamp(1.0, 0.0).unwrap_err(), &|| {
        x.value().clamp(1.0, 0.0);
    });
}

#[test]
#[should_panic(expected = "different tape")]
fn gradients_of_a_foreign_var_panic() {
    let t1 = Tape::<f64>::new();
    let t2 = Tape::<f64>::new();
    let x = t1.var(Tensor::scalar(1.0));
    let y = t2.var(Tensor::scalar(1.0));
    let g = (&x * &x).backward();
    let _ = g.get(&y);
}
