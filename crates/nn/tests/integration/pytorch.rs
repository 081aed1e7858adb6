//! PyTorch's `state_dict` both ways, on fixtures PyTorch wrote
//! (crates/nn/tests/fixtures/make_fixtures.py says how and with which versions): each file
//! loads into the matching wengert module, which then computes what torch computed —
//! evaluation and training mode, batch norm's running statistics and `num_batches_tracked`
//! included — and `nn::io` writes it back with torch's names, dtypes, shapes and bytes.

use autograd::{Element, Tensor, seeded_rng};
use nn::io::{IoError, KeyMap, LoadOptions, from_bytes, from_bytes_with, to_bytes_with};
use nn::{
    BasicConvBlock, BatchNorm2d, Conv2d, Ctx, Flatten, GlobalAvgPool, Init, LayerNorm, Linear,
    MaxPool2d, Module, Relu, ResidualBlock, Sequential,
};
use safetensors::SafeTensors;

fn read(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Tensor `key` of a fixture file, as `T` (the file holds `T`'s dtype).
fn tensor<T: Element>(file: &SafeTensors<'_>, key: &str) -> Tensor<T> {
    let view = file.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    let data: Vec<T> = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|c| T::of(f32::from_le_bytes(c.try_into().unwrap()) as f64))
            .collect(),
        safetensors::Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|c| T::of(f64::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        other => panic!("{key}: {other:?}"),
    };
    Tensor::from_vec(data, view.shape()).unwrap()
}

/// Every tensor of a file as (name, dtype, shape, bytes), sorted by name.
fn entries(bytes: &[u8]) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let mut all: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let dtype = format!("{:?}", v.dtype());
            (name, dtype, v.shape().to_vec(), v.data().to_vec())
        })
        .collect();
    all.sort();
    all
}

/// Loads fixture `name` into `module` (strictly, through `names`), checks its evaluation
/// output against torch's within `tol`, and checks that writing it back reproduces torch's
/// file tensor for tensor, byte for byte. Returns the expected-values file.
fn load_and_compare<T: Element>(
    name: &str,
    module: &dyn Module<T>,
    names: &KeyMap,
    tol: f64,
) -> Vec<u8> {
    let state = read(&format!("{name}.safetensors"));
    let report = from_bytes_with(
        module,
        &state,
        &LoadOptions::strict().with_names(names.clone()),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(report.is_complete());
    let expected_bytes = read(&format!("{name}.expected.safetensors"));
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let x = tensor::<T>(&expected, "input");
    let out = module.predict(&x);
    let diff = out
        .max_abs_diff(&tensor(&expected, "output"))
        .to_f64()
        .unwrap();
    assert!(diff <= tol, "{name}: |wengert − torch| = {diff:e}");

    let written = to_bytes_with(module, names).unwrap();
    assert_eq!(entries(&written), entries(&state), "{name}: written back");
    if let Some(dir) = std::env::var_os("WENGERT_FIXTURE_OUT") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.safetensors")),
            &written,
        )
        .unwrap();
    }
    expected_bytes
}

/// One training-mode forward on the fixture's input: torch's output, and afterwards every
/// parameter and buffer as torch had them (running statistics moved, one more batch
/// counted).
fn check_training_step<T: Element>(
    expected_bytes: &[u8],
    module: &dyn Module<T>,
    names: &KeyMap,
    tol: f64,
) {
    let expected = SafeTensors::deserialize(expected_bytes).unwrap();
    let x = tensor::<T>(&expected, "input");
    let tape = autograd::Tape::new();
    let cx = Ctx::train(&tape, 0);
    let out = module.forward(&cx, &cx.input(x)).value().clone();
    let diff = out.max_abs_diff(&tensor(&expected, "train_output"));
    assert!(diff.to_f64().unwrap() <= tol, "train output: {diff:?}");
    let params = module.named_parameters().into_iter();
    let params = params.map(|(n, p)| (n, p.value(), None));
    let buffers = module.named_buffers().into_iter();
    let buffers = buffers.map(|(n, b)| (n, b.value(), b.count()));
    for (name, value, count) in params.chain(buffers) {
        let key = format!("after_train.{}", names.to_file(&name));
        match count {
            Some(n) => {
                let view = expected.tensor(&key).unwrap();
                assert_eq!(view.dtype(), safetensors::Dtype::I64, "{key}");
                let torch = i64::from_le_bytes(view.data().try_into().unwrap());
                assert_eq!(n, torch, "{key}");
            }
            None => {
                let diff = value.max_abs_diff(&tensor(&expected, &key));
                assert!(diff.to_f64().unwrap() <= tol, "{key}: {diff:?}");
            }
        }
    }
}

#[test]
fn an_mlp_with_layer_norm_computes_what_torch_computed() {
    let mut rng = seeded_rng(0);
    let mlp = Sequential::<f32>::new()
        .push(Linear::new(4, 8, true, &mut rng))
        .push(Relu)
        .push(LayerNorm::new(8))
        .push(Linear::new(8, 3, false, &mut rng));
    load_and_compare("mlp", &mlp, &KeyMap::new(), 1e-6);
}

#[test]
fn the_notebooks_block_computes_what_torch_computed_in_f64() {
    let block = ResidualBlock::<f64>::new(6, Init::he(), &mut seeded_rng(1));
    load_and_compare("residual_block", &block, &KeyMap::new(), 1e-14);
}

#[test]
fn a_convnet_with_batch_norm_matches_torch_in_both_modes() {
    let mut rng = seeded_rng(2);
    let net = Sequential::<f32>::new()
        .push(Conv2d::new(3, 4, (3, 3), true, &mut rng).with_padding((1, 1)))
        .push(BatchNorm2d::new(4))
        .push(Relu)
        .push(MaxPool2d::new((2, 2), (2, 2)))
        .push(
            Conv2d::new(4, 6, (3, 3), false, &mut rng)
                .with_stride((2, 2))
                .with_padding((1, 1)),
        )
        .push(BatchNorm2d::new(6))
        .push(Relu)
        .push(GlobalAvgPool)
        .push(Flatten)
        .push(Linear::new(6, 2, true, &mut rng));
    let expected = load_and_compare("convnet", &net, &KeyMap::new(), 1e-5);
    let counts: Vec<Option<i64>> = net.named_buffers().iter().map(|(_, b)| b.count()).collect();
    assert!(
        counts.contains(&Some(3)),
        "torch trained 3 steps: {counts:?}"
    );
    check_training_step(&expected, &net, &KeyMap::new(), 1e-5);
}

#[test]
fn a_torchvision_basic_block_loads_through_the_resnet_key_map() {
    let block = BasicConvBlock::<f64>::new(4, 8, 2, &mut seeded_rng(3));
    let names = KeyMap::torchvision_resnet();
    let expected = load_and_compare("resnet_block", &block, &names, 1e-12);
    check_training_step(&expected, &block, &names, 1e-12);

    // Without the map, a strict load names the first tensor it cannot place, and a
    // non-strict one reports every name on both sides, loading what matches.
    let state = read("resnet_block.safetensors");
    let fresh = BasicConvBlock::<f64>::new(4, 8, 2, &mut seeded_rng(4));
    let e = from_bytes(&fresh, &state).unwrap_err();
    assert!(
        matches!(&e, IoError::Missing { name } if name == "norm1.weight"),
        "{e}"
    );
    let report = from_bytes_with(&fresh, &state, &LoadOptions::non_strict()).unwrap();
    assert_eq!(report.missing.len(), 2 * 4 + 1 + 4, "{report:?}"); // norm1, norm2, projection
    assert!(
        report
            .missing
            .contains(&"projection.conv.weight".to_string())
    );
    assert!(
        report
            .unexpected
            .contains(&"downsample.1.num_batches_tracked".to_string())
    );
    assert_eq!(report.unexpected.len(), 2 * 5 + 1 + 5, "{report:?}");
    let torch = SafeTensors::deserialize(&state).unwrap();
    assert_eq!(fresh.conv1.weight.value(), tensor(&torch, "conv1.weight"));
}
