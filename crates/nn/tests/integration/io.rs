//! Saving and loading in the safetensors format: bit-exact round trips, and a clear error —
//! never a panic, never a half-loaded module — for every kind of bad file.

use autograd::{Element, Tape, Tensor, seeded_rng};
use nn::io::{from_bytes, load, save, to_bytes};
use nn::{Ctx, IoError, Linear, Mlp, MlpConfig, Module, Normalization};
use safetensors::SafeTensors;

fn net<T: Element>(seed: u64) -> Mlp<T> {
    MlpConfig::residual(3, 4, 2, 2)
        .norm(Normalization::Batch)
        .build(&mut seeded_rng(seed))
}

/// Every parameter and buffer, in order, as raw bits.
fn snapshot<T: Element>(m: &dyn Module<T>) -> Vec<(String, Vec<usize>, Vec<u64>)> {
    let bits = |t: Tensor<T>| {
        let shape = t.shape().to_vec();
        let bits = t
            .data()
            .iter()
            .map(|x| {
                let x = x.to_f64().unwrap();
                if std::mem::size_of::<T>() == 4 {
                    (x as f32).to_bits() as u64
                } else {
                    x.to_bits()
                }
            })
            .collect();
        (shape, bits)
    };
    let params = m
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, bits(p.value())));
    let buffers = m
        .named_buffers()
        .into_iter()
        .map(|(n, b)| (n, bits(b.value())));
    params.chain(buffers).map(|(n, (s, b))| (n, s, b)).collect()
}

/// One training step, so the batch-norm running statistics are not their initial values.
fn train_once<T: Element>(m: &Mlp<T>) {
    let tape = Tape::new();
    let cx = Ctx::train(&tape, 0);
    let x = Tensor::uniform(&[5, 3], T::of(-1.0), T::of(1.0), &mut seeded_rng(3));
    m.forward(&cx, &cx.input(x));
}

fn round_trip<T: Element>() {
    let a = net::<T>(1);
    train_once(&a);
    let b = net::<T>(2);
    assert_ne!(snapshot(&a), snapshot(&b));
    let bytes = to_bytes(&a).unwrap();
    from_bytes(&b, &bytes).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b), "bit-exact, buffers included");
    // The loaded network computes the same function in evaluation (running statistics).
    let tape = Tape::new();
    let cx = Ctx::eval(&tape);
    let x = cx.input(Tensor::uniform(
        &[4, 3],
        T::of(-1.0),
        T::of(1.0),
        &mut seeded_rng(4),
    ));
    assert_eq!(a.forward(&cx, &x).value(), b.forward(&cx, &x).value());
    // The file: one entry per name, in the module's dtype, with PyTorch's shapes.
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let dtype = if std::mem::size_of::<T>() == 4 {
        safetensors::Dtype::F32
    } else {
        safetensors::Dtype::F64
    };
    assert_eq!(file.len(), snapshot(&a).len());
    let w = file.tensor("hidden.1.branch.linear2.weight").unwrap();
    assert_eq!((w.dtype(), w.shape()), (dtype, &[4usize, 4][..]));
    assert!(file.tensor("hidden.0.branch.norm1.running_var").is_ok());
}

#[test]
fn round_trips_are_bit_exact_in_f32_and_f64() {
    round_trip::<f32>();
    round_trip::<f64>();
}

#[test]
fn files_on_disk_round_trip_and_unreadable_paths_are_errors() {
    let dir = std::env::temp_dir().join(format!("nn-io-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let a = net::<f32>(5);
    save(&a, &path).unwrap();
    let b = net::<f32>(6);
    load(&b, &path).unwrap();
    assert_eq!(snapshot(&a), snapshot(&b));
    let missing = dir.join("does-not-exist.safetensors");
    let e = load(&b, &missing).unwrap_err();
    assert!(matches!(e, IoError::File { action: "read", .. }), "{e}");
    assert!(e.to_string().contains("does-not-exist"), "{e}");
    let e = save(&a, dir.join("no-such-dir").join("x.safetensors")).unwrap_err();
    assert!(
        matches!(
            e,
            IoError::File {
                action: "write",
                ..
            }
        ),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn linear(i: usize, o: usize, bias: bool, seed: u64) -> Linear<f32> {
    Linear::new(i, o, bias, &mut seeded_rng(seed))
}

#[test]
fn mismatches_are_errors_that_name_the_tensor_and_change_nothing() {
    let target = linear(3, 2, true, 1);
    let before = snapshot(&target);
    let check = |bytes: Vec<u8>, expected: fn(&IoError) -> bool, needle: &str| {
        let e = from_bytes(&target, &bytes).unwrap_err();
        assert!(expected(&e), "{e:?}");
        assert!(e.to_string().contains(needle), "{e}");
        assert_eq!(snapshot(&target), before, "a failed load changes nothing");
    };
    // The file lacks the bias.
    let no_bias = to_bytes(&linear(3, 2, false, 2)).unwrap();
    check(
        no_bias,
        |e| matches!(e, IoError::Missing { name } if name == "bias"),
        "\"bias\"",
    );
    // The file has a tensor the module lacks.
    let with_bias = to_bytes(&linear(3, 2, true, 3)).unwrap();
    let e = from_bytes(&linear(3, 2, false, 4), &with_bias).unwrap_err();
    assert!(
        matches!(&e, IoError::Unexpected { name } if name == "bias"),
        "{e}"
    );
    // Shapes differ.
    let wider = to_bytes(&linear(3, 5, true, 5)).unwrap();
    check(
        wider,
        |e| matches!(e, IoError::Shape { name, file, module } if name == "weight" && file == &[5, 3] && module == &[2, 3]),
        "[5, 3]",
    );
    // Element types differ.
    let f64_file = to_bytes(&Linear::<f64>::new(3, 2, true, &mut seeded_rng(6))).unwrap();
    check(
        f64_file,
        |e| matches!(e, IoError::Dtype { name, module: "F32", .. } if name == "weight"),
        "F64",
    );
}

#[test]
fn truncated_and_garbage_files_are_errors_not_panics() {
    let target = net::<f32>(7);
    let before = snapshot(&target);
    let good = to_bytes(&net::<f32>(8)).unwrap();
    // Every truncation.
    for len in 0..good.len() {
        let e = from_bytes(&target, &good[..len]).unwrap_err();
        assert!(matches!(e, IoError::Format(_)), "length {len}: {e}");
    }
    // Trailing bytes.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4]);
    assert!(matches!(
        from_bytes(&target, &longer),
        Err(IoError::Format(_))
    ));
    // Random bytes, and random bytes behind a plausible header length.
    let noise = Tensor::<f64>::uniform(&[4096], 0.0, 256.0, &mut seeded_rng(9));
    let noise: Vec<u8> = noise.data().iter().map(|&x| x as u8).collect();
    for len in [1, 8, 9, 64, 4096] {
        assert!(from_bytes(&target, &noise[..len]).is_err());
        let mut framed = (len as u64).to_le_bytes().to_vec();
        framed.extend_from_slice(&noise[..len]);
        assert!(from_bytes(&target, &framed).is_err());
    }
    // A header length far beyond the file; a header that is not JSON.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    assert!(matches!(
        from_bytes(&target, &huge),
        Err(IoError::Format(_))
    ));
    let mut not_json = 8u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"not json");
    assert!(matches!(
        from_bytes(&target, &not_json),
        Err(IoError::Format(_))
    ));
    // Every single corrupted byte of the header and the first data bytes: an error, or (a
    // flip inside the data) a successful load — never a panic.
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for i in 0..(8 + header_len + 16).min(good.len()) {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let probe = net::<f32>(10);
        let _ = from_bytes(&probe, &bad);
    }
    assert_eq!(snapshot(&target), before);
}

/// A safetensors file from a header written by hand and `data_len` zero bytes.
fn raw_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    bytes
}

#[test]
fn hostile_headers_are_refused_naming_the_tensor() {
    let target = linear(2, 1, true, 11);
    let before = snapshot(&target);
    let refused = |header: &str, data_len: usize| {
        let e = from_bytes(&target, &raw_file(header, data_len)).unwrap_err();
        assert_eq!(snapshot(&target), before, "a refused file changes nothing");
        e
    };
    // The same name twice: a JSON map keeps the last entry silently, and safetensors
    // accepts the file; the loader refuses it.
    let twice = r#"{"weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#;
    assert!(safetensors::SafeTensors::deserialize(&raw_file(twice, 12)).is_ok());
    let e = refused(twice, 12);
    assert!(
        matches!(&e, IoError::DuplicateInFile { name } if name == "weight"),
        "{e}"
    );
    assert!(e.to_string().contains("twice"), "{e}");
    // An unknown dtype, sizes that do not fit the offsets, offsets that run backwards or
    // leave a gap, a shape whose size overflows: each error names its tensor.
    let cases = [
        (
            r#"{"bias":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#,
            4,
            "bias",
            "Q7",
        ),
        (
            r#"{"weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
            20,
            "weight",
            "needs 24 bytes",
        ),
        (
            r#"{"weight":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#,
            8,
            "weight",
            "end before they start",
        ),
        (
            r#"{"weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"bias":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#,
            16,
            "bias",
            "offsets",
        ),
        (
            r#"{"weight":{"dtype":"F64","shape":[4611686018427387904,8],"data_offsets":[0,8]}}"#,
            8,
            "weight",
            "overflows",
        ),
    ];
    for (header, data_len, tensor, fact) in cases {
        let e = refused(header, data_len);
        assert!(
            matches!(&e, IoError::BadTensor { name, .. } if name == tensor),
            "{header}: {e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(tensor) && msg.contains(fact), "{msg}");
    }
}

#[test]
fn batch_norm_counts_are_written_as_i64_and_read_back() {
    let bn = nn::BatchNorm1d::<f32>::new(2);
    let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 5.0], &[2, 2]).unwrap();
    for seed in 0..3 {
        let tape = Tape::new();
        let cx = Ctx::train(&tape, seed);
        bn.forward(&cx, &cx.input(x.clone()));
    }
    let bytes = to_bytes(&bn).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let count = file.tensor("num_batches_tracked").unwrap();
    assert_eq!(count.dtype(), safetensors::Dtype::I64);
    assert_eq!(count.shape(), &[] as &[usize]);
    assert_eq!(count.data(), 3i64.to_le_bytes());
    let fresh = nn::BatchNorm1d::<f32>::new(2);
    from_bytes(&fresh, &bytes).unwrap();
    assert_eq!(fresh.num_batches_tracked(), 3);
    assert_eq!(fresh.running_mean(), bn.running_mean());
    // A file without the count (PyTorch fills it in for such files) keeps the module's.
    let without: Vec<u8> = {
        let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = file
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != "num_batches_tracked")
            .collect();
        safetensors::serialize(kept, None).unwrap()
    };
    let other = nn::BatchNorm1d::<f32>::new(2);
    from_bytes(&other, &without).unwrap();
    assert_eq!(other.num_batches_tracked(), 0);
    assert_eq!(other.running_mean(), bn.running_mean());
    // A count stored as a float is refused, naming it.
    let as_float: Vec<u8> = {
        let one = 3f32.to_le_bytes();
        let mut kept: Vec<(String, safetensors::tensor::TensorView<'_>)> = file
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != "num_batches_tracked")
            .collect();
        kept.push((
            "num_batches_tracked".into(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![], &one).unwrap(),
        ));
        safetensors::serialize(kept, None).unwrap()
    };
    let e = from_bytes(&other, &as_float).unwrap_err();
    assert!(
        matches!(&e, IoError::Dtype { name, module: "I64", .. } if name == "num_batches_tracked"),
        "{e}"
    );
}

#[test]
fn key_maps_rename_whole_pieces_both_ways() {
    let names = nn::io::KeyMap::new()
        .rename("bn1", "norm1")
        .rename("a.b", "c");
    assert_eq!(names.to_module("layer.bn1.weight"), "layer.norm1.weight");
    assert_eq!(names.to_module("bn10.weight"), "bn10.weight");
    assert_eq!(names.to_module("x.a.b.a"), "x.c.a");
    assert_eq!(names.to_file("x.c.a"), "x.a.b.a");
    assert_eq!(names.to_file("norm1"), "bn1");
    // Saved through the map, loaded through it: the module's own names come back.
    let block = nn::BasicConvBlock::<f32>::new(2, 3, 1, &mut seeded_rng(12));
    let map = nn::io::KeyMap::torchvision_resnet();
    let bytes = nn::io::to_bytes_with(&block, &map).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert!(file.tensor("downsample.1.running_var").is_ok());
    assert!(file.tensor("bn2.num_batches_tracked").is_ok());
    let copy = nn::BasicConvBlock::<f32>::new(2, 3, 1, &mut seeded_rng(13));
    let options = nn::io::LoadOptions::strict().with_names(map);
    assert!(
        nn::io::from_bytes_with(&copy, &bytes, &options)
            .unwrap()
            .is_complete()
    );
    assert_eq!(snapshot(&copy), snapshot(&block));
}
