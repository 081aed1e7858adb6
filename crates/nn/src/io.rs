//! Saving and loading a module's parameters (and buffers) in the safetensors format.
//!
//! Tensors are keyed by [`Module::named_parameters`] and [`Module::named_buffers`] names
//! (`"hidden.0.branch.linear1.weight"`), stored row-major, little-endian, as `F32` or `F64`
//! by the module's element type. Those are PyTorch's `state_dict` names and layouts for the
//! same architecture, so a file loads there with `safetensors.torch.load_file` and
//! `load_state_dict`.
//!
//! Loading checks everything before it changes anything: a missing tensor, an extra one, a
//! wrong shape or dtype, or a truncated or garbage file is an [`IoError`] that names the
//! tensor, and the module keeps its values. Bad bytes never cause a panic.
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
//! ```

use crate::buffer::Buffer;
use crate::module::Module;
use crate::param::Param;
use autograd::{Element, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
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
        /// The module's dtype (`F32` or `F64`).
        module: &'static str,
    },
    /// Two of the module's tensors have the same name.
    #[error("the module has two tensors named {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
}

/// A module's tensor: a learnable parameter or a buffer.
enum Slot<T: Element> {
    Param(Param<T>),
    Buffer(Buffer<T>),
}

impl<T: Element> Slot<T> {
    fn value(&self) -> Tensor<T> {
        match self {
            Slot::Param(p) => p.value(),
            Slot::Buffer(b) => b.value(),
        }
    }

    fn set(&self, value: Tensor<T>) {
        match self {
            Slot::Param(p) => p.set(value),
            Slot::Buffer(b) => b.set(value),
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

/// The safetensors dtype of `T` and its width in bytes.
fn dtype_of<T: Element>() -> (Dtype, &'static str, usize) {
    if std::mem::size_of::<T>() == 4 {
        (Dtype::F32, "F32", 4)
    } else {
        (Dtype::F64, "F64", 8)
    }
}

fn encode<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let wide = |x: &T| x.to_f64().unwrap_or(f64::NAN);
    match dtype_of::<T>().0 {
        Dtype::F32 => t
            .data()
            .iter()
            .flat_map(|x| (wide(x) as f32).to_le_bytes())
            .collect(),
        _ => t
            .data()
            .iter()
            .flat_map(|x| wide(x).to_le_bytes())
            .collect(),
    }
}

fn decode<T: Element>(bytes: &[u8]) -> Vec<T> {
    match dtype_of::<T>().0 {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| T::of(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect(),
        _ => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                T::of(f64::from_le_bytes(b))
            })
            .collect(),
    }
}

/// The module's parameters and buffers as a safetensors file in memory.
pub fn to_bytes<T: Element>(module: &dyn Module<T>) -> Result<Vec<u8>, IoError> {
    let (dtype, _, _) = dtype_of::<T>();
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = slots(module)?
        .into_iter()
        .map(|(name, slot)| {
            let value = slot.value();
            (name, value.shape().to_vec(), encode(&value))
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| IoError::Format(format!("tensor {name:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| IoError::Format(e.to_string()))
}

/// Loads every parameter and buffer of `module` from a safetensors file in memory; on any
/// error the module is left unchanged.
pub fn from_bytes<T: Element>(module: &dyn Module<T>, bytes: &[u8]) -> Result<(), IoError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| IoError::Format(e.to_string()))?;
    let (_, module_dtype, _) = dtype_of::<T>();
    let slots = slots(module)?;
    let mut loaded = Vec::with_capacity(slots.len());
    for (name, slot) in &slots {
        let view = file
            .tensor(name)
            .map_err(|_| IoError::Missing { name: name.clone() })?;
        if view.dtype() != dtype_of::<T>().0 {
            return Err(IoError::Dtype {
                name: name.clone(),
                file: format!("{:?}", view.dtype()),
                module: module_dtype,
            });
        }
        let expected = slot.value().shape().to_vec();
        if view.shape() != expected.as_slice() {
            return Err(IoError::Shape {
                name: name.clone(),
                file: view.shape().to_vec(),
                module: expected,
            });
        }
        let tensor = Tensor::from_vec(decode(view.data()), &expected)
            .map_err(|e| IoError::Format(format!("tensor {name:?}: {e}")))?;
        loaded.push(tensor);
    }
    let known: HashSet<&str> = slots.iter().map(|(n, _)| n.as_str()).collect();
    let mut extra: Vec<&str> = file
        .names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .collect();
    extra.sort_unstable();
    if let Some(name) = extra.first() {
        return Err(IoError::Unexpected {
            name: name.to_string(),
        });
    }
    for ((_, slot), value) in slots.iter().zip(loaded) {
        slot.set(value);
    }
    Ok(())
}

/// Writes the module's parameters and buffers to `path` as safetensors.
pub fn save<T: Element>(module: &dyn Module<T>, path: impl AsRef<Path>) -> Result<(), IoError> {
    let bytes = to_bytes(module)?;
    std::fs::write(path.as_ref(), bytes).map_err(|source| IoError::File {
        action: "write",
        path: path.as_ref().to_path_buf(),
        source,
    })
}

/// Loads the module's parameters and buffers from the safetensors file at `path`; on any
/// error the module is left unchanged.
pub fn load<T: Element>(module: &dyn Module<T>, path: impl AsRef<Path>) -> Result<(), IoError> {
    let bytes = std::fs::read(path.as_ref()).map_err(|source| IoError::File {
        action: "read",
        path: path.as_ref().to_path_buf(),
        source,
    })?;
    from_bytes(module, &bytes)
}
