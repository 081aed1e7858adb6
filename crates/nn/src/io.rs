//! Saving and loading a module's parameters and buffers in the safetensors format, as
//! PyTorch's `state_dict` both ways.
//!
//! A file holds one tensor per [`Module::named_parameters`] and [`Module::named_buffers`]
//! name (`"hidden.0.branch.linear1.weight"`), row-major, little-endian, as `F32` or `F64`
//! by the module's element type; a counter buffer (batch norm's `num_batches_tracked`) is a
//! 0-d `I64`. For the same architecture those are PyTorch's `state_dict` names, shapes and
//! dtypes, so `safetensors.torch.save_file(model.state_dict(), path)` writes a file
//! [`load`] reads, and a file [`save`] writes loads in PyTorch with
//! `model.load_state_dict(safetensors.torch.load_file(path))`.
//!
//! # Key names
//!
//! | layer | tensors (PyTorch's names and layouts) |
//! |---|---|
//! | [`Linear`](crate::Linear) | `weight` `[out, in]`, `bias` `[out]` |
//! | [`Conv2d`](crate::Conv2d) | `weight` `[out, in, kh, kw]`, `bias` `[out]` |
//! | [`BatchNorm1d`](crate::BatchNorm1d), [`BatchNorm2d`](crate::BatchNorm2d) | `weight`, `bias`, `running_mean`, `running_var` `[C]`; `num_batches_tracked` `[]` (`I64`) |
//! | [`LayerNorm`](crate::LayerNorm) | `weight`, `bias` (the normalised shape) |
//! | [`Sequential`](crate::Sequential), [`Stack`](crate::Stack) | each layer's under its index: `0.weight`, `2.bias` (activations and pooling hold none but keep their index) |
//! | [`ResidualBlock`](crate::ResidualBlock) | `linear1.*`, `linear2.*` |
//! | [`ProjectionBlock`](crate::ProjectionBlock) | `linear1.*`, `linear2.*`, `projection.weight` |
//! | [`Residual`](crate::Residual) | `branch.*`, `projection.weight` |
//! | [`PreActBlock`](crate::PreActBlock) | `norm1.*`, `linear1.*`, `norm2.*`, `linear2.*` |
//! | [`BasicConvBlock`](crate::BasicConvBlock) | `conv1.weight`, `norm1.*`, `conv2.weight`, `norm2.*`, `projection.conv.weight`, `projection.norm.*` |
//! | [`Mlp`](crate::Mlp) | `input.*`, `hidden.{i}.…`, `output.*` |
//!
//! torchvision's ResNet names its block's parts `bn1`, `bn2` and `downsample.0` (the 1×1
//! convolution), `downsample.1` (its batch norm); [`KeyMap::torchvision_resnet`] renames
//! them to `norm1`, `norm2`, `projection.conv`, `projection.norm` when loading
//! ([`LoadOptions::with_names`]) and back when saving ([`to_bytes_with`]), so a
//! torchvision `BasicBlock`'s `state_dict` loads into a [`BasicConvBlock`](crate::BasicConvBlock).
//!
//! # Loading
//!
//! Loading checks everything before it changes anything: a missing tensor, an extra one, a
//! wrong shape or dtype, a header that names a tensor twice or describes one wrongly, or a
//! truncated or garbage file is an [`IoError`] that names the tensor, and the module keeps
//! its values. Bad bytes never cause a panic. [`LoadOptions::non_strict`] (PyTorch's
//! `strict=False`) loads what matches and reports the missing and unexpected names in a
//! [`LoadReport`] instead; shapes and dtypes must still agree. A counter the file lacks
//! keeps its value, as PyTorch fills in `num_batches_tracked` for files without version
//! metadata (safetensors files have none).
//!
//! ```
//! use nn::{Linear, Module};
//! use autograd::seeded_rng;
//!
//! let a = Linear::<f32>::new(3, 2, true, &mut seeded_rng(0));
//! let b = Linear::<f32>::new(3, 2, true, &mut seeded_rng(1));
//! let bytes = nn::io::to_bytes(&a).unwrap();
//! nn::io::from_bytes(&b, &bytes).unwrap();
//! assert_eq!(a.weight.value(), b.weight.value());
//!
//! // A layer without a bias takes what fits and reports the rest.
//! let c = Linear::<f32>::new(3, 2, false, &mut seeded_rng(2));
//! let report = nn::io::from_bytes_with(&c, &bytes, &nn::io::LoadOptions::non_strict()).unwrap();
//! assert_eq!(report.unexpected, vec!["bias".to_string()]);
//! assert_eq!(c.weight.value(), a.weight.value());
//! ```

use crate::buffer::Buffer;
use crate::module::Module;
use crate::param::Param;
use autograd::{Element, Tensor};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, TensorInfo, TensorView};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What can go wrong when saving or loading.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    File {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (truncated, garbage, inconsistent header).
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    /// The file's header describes a tensor that cannot be read: an unknown dtype, data
    /// offsets that do not fit, a shape whose size overflows or differs from its bytes.
    #[error("not a valid safetensors file: tensor {name:?}: {reason}")]
    BadTensor {
        /// The file's name for it.
        name: String,
        /// What is wrong with its entry.
        reason: String,
    },
    /// The file's header names a tensor twice (a JSON parser would keep one silently).
    #[error("not a valid safetensors file: the header names tensor {name:?} twice")]
    DuplicateInFile {
        /// The repeated name.
        name: String,
    },
    /// The module has a tensor the file lacks.
    #[error("tensor {name:?} is missing from the file")]
    Missing {
        /// The module's name for it.
        name: String,
    },
    /// The file has a tensor the module lacks.
    #[error("the file has tensor {name:?}, which the module does not have")]
    Unexpected {
        /// The file's name for it.
        name: String,
    },
    /// A tensor's shape differs between file and module.
    #[error("tensor {name:?} has shape {file:?} in the file but {module:?} in the module")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape in the file.
        file: Vec<usize>,
        /// Its shape in the module.
        module: Vec<usize>,
    },
    /// A tensor's element type differs between file and module.
    #[error("tensor {name:?} is stored as {file} in the file but the module holds {module}")]
    Dtype {
        /// The tensor.
        name: String,
        /// The file's dtype (safetensors' name, e.g. `F64`).
        file: String,
        /// The module's dtype (`F32`, `F64`, or `I64` for a counter).
        module: &'static str,
    },
    /// Two of the module's tensors have the same name.
    #[error("the module has two tensors named {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
}

/// Renames tensors between a file's naming and a module's, one dotted path piece at a
/// time: a rule `"bn1" ↔ "norm1"` turns `layer1.0.bn1.weight` into `layer1.0.norm1.weight`
/// (whole pieces only: `bn10` stays). Rules are tried in order at each position; a
/// matched piece is not renamed again.
///
/// ```
/// use nn::io::KeyMap;
/// let names = KeyMap::torchvision_resnet();
/// assert_eq!(names.to_module("layer1.0.downsample.1.running_mean"), "layer1.0.projection.norm.running_mean");
/// assert_eq!(names.to_file("norm2.num_batches_tracked"), "bn2.num_batches_tracked");
/// assert_eq!(names.to_module("fc.weight"), "fc.weight");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMap {
    /// (the file's pieces, the module's pieces).
    rules: Vec<(Vec<String>, Vec<String>)>,
}

impl KeyMap {
    /// No renaming.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: the dotted piece `file` in a file's names is `module` in the module's.
    pub fn rename(mut self, file: &str, module: &str) -> Self {
        let pieces = |s: &str| s.split('.').map(str::to_string).collect();
        self.rules.push((pieces(file), pieces(module)));
        self
    }

    /// torchvision's ResNet block names to [`BasicConvBlock`](crate::BasicConvBlock)'s:
    /// `bn1` ↔ `norm1`, `bn2` ↔ `norm2`, `downsample.0` ↔ `projection.conv`,
    /// `downsample.1` ↔ `projection.norm`.
    pub fn torchvision_resnet() -> Self {
        Self::new()
            .rename("bn1", "norm1")
            .rename("bn2", "norm2")
            .rename("downsample.0", "projection.conv")
            .rename("downsample.1", "projection.norm")
    }

    /// A file's name for a tensor, as the module names it.
    pub fn to_module(&self, file_name: &str) -> String {
        self.apply(file_name, |(file, module)| (file, module))
    }

    /// A module's name for a tensor, as the file names it.
    pub fn to_file(&self, module_name: &str) -> String {
        self.apply(module_name, |(file, module)| (module, file))
    }

    /// Rewrites `name` piece by piece with the rules, each seen as (from, to) by `dir`.
    fn apply<'a>(
        &'a self,
        name: &str,
        dir: impl Fn((&'a [String], &'a [String])) -> (&'a [String], &'a [String]),
    ) -> String {
        let pieces: Vec<&str> = name.split('.').collect();
        let mut out: Vec<&str> = Vec::with_capacity(pieces.len());
        let mut i = 0;
        while i < pieces.len() {
            let rule = self
                .rules
                .iter()
                .map(|(f, m)| dir((f, m)))
                .find(|(from, _)| {
                    pieces.len() - i >= from.len()
                        && from.iter().zip(&pieces[i..]).all(|(a, b)| a == b)
                });
            match rule {
                Some((from, to)) => {
                    out.extend(to.iter().map(String::as_str));
                    i += from.len();
                }
                None => {
                    out.push(pieces[i]);
                    i += 1;
                }
            }
        }
        out.join(".")
    }
}

/// How [`from_bytes_with`] and [`load_with`] load: strict or not, and the file's naming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    strict: bool,
    names: KeyMap,
}

impl Default for LoadOptions {
    /// Strict, names as the module's.
    fn default() -> Self {
        LoadOptions {
            strict: true,
            names: KeyMap::new(),
        }
    }
}

impl LoadOptions {
    /// Every tensor of the module must be in the file and every tensor of the file in
    /// the module (PyTorch's `strict=True`, the default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Loads the tensors the file and the module share and reports the others in the
    /// [`LoadReport`] (PyTorch's `strict=False`); shapes and dtypes must still agree.
    pub fn non_strict() -> Self {
        LoadOptions {
            strict: false,
            ..Self::default()
        }
    }

    /// The same options, reading the file's names through `names` (e.g.
    /// [`KeyMap::torchvision_resnet`]).
    pub fn with_names(mut self, names: KeyMap) -> Self {
        self.names = names;
        self
    }
}

/// What a non-strict load left out (both empty after a strict load).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The module's tensors the file lacks (they keep their values), by the module's names.
    pub missing: Vec<String>,
    /// The file's tensors the module lacks, by the file's names.
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// Whether every tensor matched.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

/// A module's tensor: a learnable parameter, a buffer, or a counter buffer.
enum Slot<T: Element> {
    Param(Param<T>),
    Buffer(Buffer<T>),
}

/// A tensor read from a file, ready to be put in its slot.
enum Loaded<T> {
    Values(Tensor<T>),
    Count(i64),
}

impl<T: Element> Slot<T> {
    fn is_counter(&self) -> bool {
        matches!(self, Slot::Buffer(b) if b.is_counter())
    }

    /// The dtype this slot is stored as, and its name.
    fn dtype(&self) -> (Dtype, &'static str) {
        if self.is_counter() {
            (Dtype::I64, "I64")
        } else if std::mem::size_of::<T>() == 4 {
            (Dtype::F32, "F32")
        } else {
            (Dtype::F64, "F64")
        }
    }

    fn shape(&self) -> Vec<usize> {
        match self {
            Slot::Param(p) => p.shape(),
            Slot::Buffer(b) => b.shape(),
        }
    }

    /// The little-endian bytes of the value, in the slot's dtype.
    fn encode(&self) -> Vec<u8> {
        match self {
            Slot::Buffer(b) if b.is_counter() => b.count().unwrap_or(0).to_le_bytes().to_vec(),
            Slot::Param(p) => encode_floats(&p.value()),
            Slot::Buffer(b) => encode_floats(&b.value()),
        }
    }

    /// The value in `bytes` (of the slot's dtype and shape, checked by the caller).
    fn decode(&self, bytes: &[u8], shape: &[usize]) -> Result<Loaded<T>, String> {
        if self.is_counter() {
            let count = bytes
                .try_into()
                .map(i64::from_le_bytes)
                .map_err(|_| format!("a count needs 8 bytes, the file has {}", bytes.len()))?;
            return Ok(Loaded::Count(count));
        }
        Tensor::from_vec(decode_floats(bytes), shape)
            .map(Loaded::Values)
            .map_err(|e| e.to_string())
    }

    fn set(&self, value: Loaded<T>) {
        match (self, value) {
            (Slot::Param(p), Loaded::Values(t)) => p.set(t),
            (Slot::Buffer(b), Loaded::Values(t)) => b.set(t),
            (Slot::Buffer(b), Loaded::Count(n)) => b.set_count(n),
            (Slot::Param(_), Loaded::Count(_)) => {
                unreachable!("only counter buffers decode to a count")
            }
        }
    }
}

/// Every named tensor of the module, parameters first; an error on a repeated name.
fn slots<T: Element>(module: &dyn Module<T>) -> Result<Vec<(String, Slot<T>)>, IoError> {
    let params = module
        .named_parameters()
        .into_iter()
        .map(|(n, p)| (n, Slot::Param(p)));
    let buffers = module
        .named_buffers()
        .into_iter()
        .map(|(n, b)| (n, Slot::Buffer(b)));
    let all: Vec<_> = params.chain(buffers).collect();
    let mut seen = HashSet::new();
    for (name, _) in &all {
        if !seen.insert(name.as_str()) {
            return Err(IoError::DuplicateName { name: name.clone() });
        }
    }
    Ok(all)
}

fn encode_floats<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let wide = |x: &T| x.to_f64().unwrap_or(f64::NAN);
    if std::mem::size_of::<T>() == 4 {
        t.data()
            .iter()
            .flat_map(|x| (wide(x) as f32).to_le_bytes())
            .collect()
    } else {
        t.data()
            .iter()
            .flat_map(|x| wide(x).to_le_bytes())
            .collect()
    }
}

fn decode_floats<T: Element>(bytes: &[u8]) -> Vec<T> {
    if std::mem::size_of::<T>() == 4 {
        bytes
            .chunks_exact(4)
            .map(|c| T::of(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                T::of(f64::from_le_bytes(b))
            })
            .collect()
    }
}

/// The module's parameters and buffers as a safetensors file in memory.
pub fn to_bytes<T: Element>(module: &dyn Module<T>) -> Result<Vec<u8>, IoError> {
    to_bytes_with(module, &KeyMap::new())
}

/// [`to_bytes`], naming each tensor in the file through `names` (e.g.
/// [`KeyMap::torchvision_resnet`] for torchvision's ResNet names).
pub fn to_bytes_with<T: Element>(
    module: &dyn Module<T>,
    names: &KeyMap,
) -> Result<Vec<u8>, IoError> {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = slots(module)?
        .into_iter()
        .map(|(name, slot)| {
            (
                names.to_file(&name),
                slot.dtype().0,
                slot.shape(),
                slot.encode(),
            )
        })
        .collect();
    let mut seen = HashSet::new();
    if let Some((name, ..)) = encoded.iter().find(|(n, ..)| !seen.insert(n)) {
        return Err(IoError::DuplicateName { name: name.clone() });
    }
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| IoError::Format(format!("tensor {name:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| IoError::Format(e.to_string()))
}

/// Loads every parameter and buffer of `module` from a safetensors file in memory
/// (strictly: see [`from_bytes_with`] for the options); on any error the module is left
/// unchanged.
pub fn from_bytes<T: Element>(module: &dyn Module<T>, bytes: &[u8]) -> Result<(), IoError> {
    from_bytes_with(module, bytes, &LoadOptions::strict()).map(|_| ())
}

/// Loads `module`'s parameters and buffers from a safetensors file in memory, strictly or
/// not and with the file's names mapped as `options` say; returns what a non-strict load
/// left out. On any error the module is left unchanged.
pub fn from_bytes_with<T: Element>(
    module: &dyn Module<T>,
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<LoadReport, IoError> {
    check_header(bytes)?;
    let file = SafeTensors::deserialize(bytes).map_err(format_error)?;
    let slots = slots(module)?;
    let mut report = LoadReport::default();
    let mut loaded = Vec::with_capacity(slots.len());
    let mut used = HashSet::new();
    for (name, slot) in &slots {
        let file_name = options.names.to_file(name);
        let Ok(view) = file.tensor(&file_name) else {
            if slot.is_counter() {
                continue; // keeps its count, as PyTorch does for num_batches_tracked
            }
            if options.strict {
                return Err(IoError::Missing { name: name.clone() });
            }
            report.missing.push(name.clone());
            continue;
        };
        used.insert(file_name.clone());
        let (dtype, dtype_name) = slot.dtype();
        if view.dtype() != dtype {
            return Err(IoError::Dtype {
                name: file_name,
                file: format!("{:?}", view.dtype()),
                module: dtype_name,
            });
        }
        let expected = slot.shape();
        if view.shape() != expected.as_slice() {
            return Err(IoError::Shape {
                name: file_name,
                file: view.shape().to_vec(),
                module: expected,
            });
        }
        let value = slot
            .decode(view.data(), &expected)
            .map_err(|reason| IoError::BadTensor {
                name: file_name,
                reason,
            })?;
        loaded.push((slot, value));
    }
    let mut extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .map(str::to_string)
        .collect();
    extra.sort_unstable();
    if options.strict {
        if let Some(name) = extra.into_iter().next() {
            return Err(IoError::Unexpected { name });
        }
    } else {
        report.unexpected = extra;
    }
    for (slot, value) in loaded {
        slot.set(value);
    }
    Ok(report)
}

/// safetensors' own parse error, naming the tensor where it knows it.
fn format_error(e: SafeTensorError) -> IoError {
    match e {
        SafeTensorError::InvalidOffset(name) => IoError::BadTensor {
            name,
            reason: "its data offsets do not follow the previous tensor's".into(),
        },
        e => IoError::Format(e.to_string()),
    }
}

/// Checks the header's tensor entries one by one, so that an error names its tensor, and
/// refuses a name given twice (the JSON parser behind safetensors keeps the last one).
/// Bytes without a readable header pass: safetensors' parser then says what is wrong.
fn check_header(bytes: &[u8]) -> Result<(), IoError> {
    let Some(entries) = header_entries(bytes) else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    for (name, info) in entries {
        if !seen.insert(name.clone()) {
            return Err(IoError::DuplicateInFile { name });
        }
        let bad = |reason: String| IoError::BadTensor {
            name: name.clone(),
            reason,
        };
        let info = info.map_err(|e| bad(format!("invalid entry: {e}")))?;
        let (start, end) = info.data_offsets;
        let Some(len) = end.checked_sub(start) else {
            return Err(bad(format!(
                "data offsets [{start}, {end}] end before they start"
            )));
        };
        let bits = info
            .shape
            .iter()
            .try_fold(info.dtype.bitsize(), |n, &d| n.checked_mul(d));
        match bits {
            None => return Err(bad(format!("the size of shape {:?} overflows", info.shape))),
            Some(bits) if bits % 8 != 0 || bits / 8 != len => {
                let needs = if bits % 8 == 0 {
                    format!("{} bytes", bits / 8)
                } else {
                    format!("{bits} bits")
                };
                return Err(bad(format!(
                    "shape {:?} of {:?} needs {needs}, its data offsets [{start}, {end}] hold {len} bytes",
                    info.shape, info.dtype
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The header's tensor entries, in file order, each parsed on its own; `None` if the bytes
/// do not start with a length and a JSON object.
fn header_entries(bytes: &[u8]) -> Option<Vec<(String, Result<TensorInfo, String>)>> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = usize::try_from(len).ok()?.checked_add(8)?;
    let text = std::str::from_utf8(bytes.get(8..end)?).ok()?;
    serde_json::from_str::<header::Entries>(text)
        .ok()
        .map(|h| h.0)
}

/// A safetensors header read as a list of (name, entry), keeping repeated names.
mod header {
    use safetensors::tensor::TensorInfo;
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    pub struct Entries(pub Vec<(String, Result<TensorInfo, String>)>);

    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(EntriesVisitor)
        }
    }

    struct EntriesVisitor;

    impl<'de> Visitor<'de> for EntriesVisitor {
        type Value = Entries;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of tensor entries")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
            let mut entries = Vec::new();
            while let Some(name) = map.next_key::<String>()? {
                if name == "__metadata__" {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let value: serde_json::Value = map.next_value()?;
                let info = serde_json::from_value::<TensorInfo>(value).map_err(|e| e.to_string());
                entries.push((name, info));
            }
            Ok(Entries(entries))
        }
    }
}

/// Writes the module's parameters and buffers to `path` as safetensors.
pub fn save<T: Element>(module: &dyn Module<T>, path: impl AsRef<Path>) -> Result<(), IoError> {
    save_with(module, path, &KeyMap::new())
}

/// [`save`], naming each tensor in the file through `names`.
pub fn save_with<T: Element>(
    module: &dyn Module<T>,
    path: impl AsRef<Path>,
    names: &KeyMap,
) -> Result<(), IoError> {
    let bytes = to_bytes_with(module, names)?;
    std::fs::write(path.as_ref(), bytes).map_err(|source| IoError::File {
        action: "write",
        path: path.as_ref().to_path_buf(),
        source,
    })
}

/// Loads the module's parameters and buffers from the safetensors file at `path`
/// (strictly); on any error the module is left unchanged.
pub fn load<T: Element>(module: &dyn Module<T>, path: impl AsRef<Path>) -> Result<(), IoError> {
    load_with(module, path, &LoadOptions::strict()).map(|_| ())
}

/// [`load`] with options (strictness, the file's names); returns what a non-strict load
/// left out.
pub fn load_with<T: Element>(
    module: &dyn Module<T>,
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<LoadReport, IoError> {
    let bytes = std::fs::read(path.as_ref()).map_err(|source| IoError::File {
        action: "read",
        path: path.as_ref().to_path_buf(),
        source,
    })?;
    from_bytes_with(module, &bytes, options)
}
