//! Programs over the op API, decoded from bytes: the generator and interpreter shared by
//! the op fuzzer (`fuzz/fuzz_targets/ops.rs`, which includes this file by path) and the
//! `op_programs` proptest of this test suite. It lives with the tests of the crate it
//! tests, so the published crate stays self-contained; the fuzz crate is never published.
//!
//! A program is an element type (f32 or f64), a few inputs — tracked `Var`s or constants,
//! of random shapes with dimensions 0, 1, small, or enormous (2³¹ … `usize::MAX`, possible
//! next to a 0) and values that include NaN, ±∞ and −0 — then up to a dozen ops with
//! random operands and parameters (axes, ranges, indices, strides, paddings, kernels),
//! called through the `try_*` API, then a backward pass from one of the results.
//!
//! The property, checked by [`run`] (a panic is a finding):
//! - no op panics, and none hangs or exhausts memory: an op whose buffers or work would be
//!   large but possible is not called (see [`Budget`]), every other one is;
//! - where this file's reference rules say the call is invalid, or its result cannot be
//!   addressed or allocated, the op returns an `Error` (whose message renders and names a
//!   line); where they say it is valid, the op returns a value of the reference shape;
//! - for small shapes, the value agrees with a naive reference implementation (loops over
//!   the definition, in the same element type; sums compared with a tolerance);
//! - backward from a result succeeds (or, in anomaly mode, reports an anomaly) and gives
//!   every tracked input a gradient of its shape.

// The closures here return the library's own `Result`; the size of `Error` is the
// library's concern.
#![allow(clippy::result_large_err)]

use autograd::{Element, Error, Tape, Tensor, Var};

/// Values with at most this many elements are compared with the reference.
const SMALL: usize = 4096;
/// Any buffer an op may allocate, in elements, when it is called for a value.
const MAX_BUFFER: u128 = 1 << 16;
/// Multiply-adds (or element visits) an op may do when it is called for a value.
const MAX_WORK: u128 = 1 << 22;
/// Buffers of at least this many bytes (256 TiB) are beyond any machine's address space:
/// an op that needs one must return `Error::Alloc` (or `SizeOverflow`).
const FAILS: u128 = 1 << 48;

/// What [`run`] did, for the proptest's statistics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// Ops called.
    pub calls: usize,
    /// Of which returned an error (as the reference said they must).
    pub errors: usize,
    /// Values compared element by element with the reference.
    pub compared: usize,
    /// Ops not called: valid, but beyond the budget.
    pub skipped: usize,
    /// Backward passes run.
    pub backward: usize,
}

/// Decodes a program from `bytes` and runs it, checking the property above.
///
/// # Panics
/// On a finding, with a message naming the step.
pub fn run(bytes: &[u8]) -> Report {
    let mut input = Bytes {
        bytes,
        at: 0,
        palette: [1; 3],
    };
    input.palette = [input.fresh_dim(), input.fresh_dim(), input.fresh_dim()];
    let mut report = Report::default();
    if input.flag() {
        Program::<f32>::run(&mut input, &mut report);
    } else {
        Program::<f64>::run(&mut input, &mut report);
    }
    report
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// A reader of fuzzer bytes; past the end every read is 0.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The program's favourite dimensions: shapes draw most dimensions from these, so
    /// that operands often fit together (broadcast, multiply, concatenate).
    palette: [usize; 3],
}

/// Dimensions, indices and parameters that are not small: they overflow products, sums
/// and strides, alone or together.
const ENORMOUS: [usize; 8] = [
    1 << 20,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    1 << 63,
    0xAAAA_AAAA_AAAA_AAAB, // 3 × this wraps to 1
    usize::MAX,
];

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.byte() as usize % n }
    }
    /// A dimension: mostly one of the palette's.
    fn dim(&mut self) -> usize {
        match self.byte() % 8 {
            0..=5 => self.palette[self.below(3)],
            _ => self.fresh_dim(),
        }
    }
    /// A new dimension: mostly 1 to 4, often 0, sometimes enormous.
    fn fresh_dim(&mut self) -> usize {
        match self.byte() % 16 {
            0..=2 => 0,
            3..=5 => 1,
            6..=12 => 2 + self.below(3),
            13 => 5 + self.below(4),
            _ => ENORMOUS[self.below(ENORMOUS.len())],
        }
    }
    /// An index, axis or parameter: mostly small, sometimes enormous.
    fn index(&mut self) -> usize {
        match self.byte() % 8 {
            0..=5 => self.below(5),
            6 => 5 + self.below(12),
            _ => ENORMOUS[self.below(ENORMOUS.len())],
        }
    }
    /// An axis of a value of rank `rank`: mostly a valid one, counted from the front or
    /// (negative) from the back; else one just out of range, or far out.
    fn axis(&mut self, rank: usize) -> i64 {
        let r = rank as i64;
        match self.byte() % 8 {
            0 => match self.byte() % 4 {
                0 => r,
                1 => -r - 1,
                2 => [i64::MIN, i64::MAX, 1 << 40, -(1 << 40)][self.below(4)],
                _ => self.index() as i64, // usize::MAX is −1, 2⁶³ is i64::MIN
            },
            k if rank > 0 => {
                let a = self.below(rank) as i64;
                if k % 2 == 0 { a - r } else { a }
            }
            _ => self.index() as i64,
        }
    }
    /// An index below `len`, mostly (else any index).
    fn index_below(&mut self, len: usize) -> usize {
        if len > 0 && !self.byte().is_multiple_of(8) {
            self.below(len.min(256))
        } else {
            self.index()
        }
    }
    /// A permutation of `rank` axes, some counted from the back, mostly (else random axes).
    fn permutation(&mut self, rank: usize) -> Vec<i64> {
        if self.byte().is_multiple_of(8) {
            return (0..self.below(5)).map(|_| self.axis(rank)).collect();
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            perm.swap(i, self.below(i + 1));
        }
        perm.into_iter()
            .map(|p| p as i64 - if self.flag() { rank as i64 } else { 0 })
            .collect()
    }
    /// A shape with the element count of `shape`, mostly (else a random shape).
    fn reshaped(&mut self, shape: &[usize]) -> Vec<usize> {
        let n: usize = shape.iter().product();
        match self.byte() % 6 {
            0 => vec![n],
            1 => vec![1, n],
            2 => shape.iter().rev().copied().collect(),
            3 => {
                let mut s = shape.to_vec();
                s.insert(self.below(s.len() + 1), 1);
                s
            }
            _ => self.shape(4),
        }
    }
    fn shape(&mut self, max_rank: usize) -> Vec<usize> {
        let rank = self.below(max_rank + 1);
        (0..rank).map(|_| self.dim()).collect()
    }
    fn pair(&mut self) -> (usize, usize) {
        (self.index(), self.index())
    }
    /// A scalar parameter (for scalar ops, clamp bounds, slopes, powers).
    fn scalar<T: Element>(&mut self) -> T {
        const SCALARS: [f64; 12] = [
            0.0,
            1.0,
            -1.0,
            0.5,
            2.0,
            -2.5,
            3.0,
            1e-3,
            1e3,
            f64::NAN,
            f64::INFINITY,
            -0.0,
        ];
        T::of(SCALARS[self.below(SCALARS.len())])
    }
}

/// The values of an input: a cycle through small numbers, with NaN, ±∞ and −0 mixed in
/// when `special`.
fn element<T: Element>(seed: usize, special: bool, j: usize) -> T {
    const PLAIN: [f64; 11] = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, -3.0, 0.25, 7.0];
    const SPECIAL: [f64; 4] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0];
    let k = seed.wrapping_add(j.wrapping_mul(7));
    if special && k % 13 == 5 {
        T::of(SPECIAL[(k / 13) % SPECIAL.len()])
    } else {
        T::of(PLAIN[k % PLAIN.len()])
    }
}

// ---------------------------------------------------------------------------------------
// The reference: shapes, validity and sizes with u128 arithmetic, values by definition
// ---------------------------------------------------------------------------------------

/// The product of `dims` in u128, saturating (so it never overflows itself).
fn product(dims: impl IntoIterator<Item = usize>) -> u128 {
    dims.into_iter()
        .fold(1u128, |p, d| p.saturating_mul(d as u128))
}

/// Whether a tensor of `shape` with elements of `T` can be addressed: the product of its
/// nonzero dimensions, in bytes, at most `isize::MAX` (the library's rule).
fn addressable<T>(shape: &[usize]) -> bool {
    let nonzero = product(shape.iter().copied().filter(|&d| d != 0));
    nonzero.saturating_mul(size_of::<T>() as u128) <= isize::MAX as u128
}

/// What the reference says of a call.
enum Expect {
    /// The arguments break a rule: the op must return an error.
    Invalid(&'static str),
    /// A result of `shape`, for which the op allocates `buffers` (each given by its shape,
    /// in the order the op allocates them; the output among them where it is allocated)
    /// and does `work`.
    Valid {
        shape: Vec<usize>,
        buffers: Vec<Vec<usize>>,
        work: u128,
    },
}

/// Whether a result of `shape` costing `work` is small enough to compute by definition.
fn small_work(shape: &[usize], work: u128) -> bool {
    product(shape.iter().copied()) <= SMALL as u128 && work <= MAX_WORK && addressable::<f64>(shape)
}

/// A value as the reference computes it: shape and row-major elements.
#[derive(Clone, Debug)]
struct Naive<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

impl<T: Element> Naive<T> {
    fn of(t: &Tensor<T>) -> Self {
        Naive {
            shape: t.shape().to_vec(),
            data: t.to_vec(),
        }
    }
}

impl<T: Copy> Naive<T> {
    fn reshaped(&self, shape: &[usize]) -> Self {
        Naive {
            shape: shape.to_vec(),
            data: self.data.clone(),
        }
    }
    fn numel(&self) -> usize {
        self.data.len()
    }
    fn at(&self, index: &[usize]) -> T {
        let s = strides(&self.shape);
        self.data[index.iter().zip(&s).map(|(i, s)| i * s).sum::<usize>()]
    }
    /// The value read as `shape` (a broadcast of it): index from the right, 0 where 1.
    fn at_broadcast(&self, index: &[usize]) -> T {
        let skip = index.len() - self.shape.len();
        let own: Vec<usize> = (0..self.shape.len())
            .map(|d| {
                if self.shape[d] == 1 {
                    0
                } else {
                    index[skip + d]
                }
            })
            .collect();
        self.at(&own)
    }
    fn from_fn(shape: &[usize], mut f: impl FnMut(&[usize]) -> T) -> Self {
        let n: usize = shape.iter().product();
        let mut index = vec![0; shape.len()];
        let mut data = Vec::with_capacity(n);
        for _ in 0..n {
            data.push(f(&index));
            for d in (0..shape.len()).rev() {
                index[d] += 1;
                if index[d] < shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Naive {
            shape: shape.to_vec(),
            data,
        }
    }
}

/// The extremum of a non-empty slice and its first position, the first NaN winning
/// (PyTorch's rule for `max`, `min`, `argmax`, `argmin`).
fn extremum<T: Element>(x: &[T], min: bool) -> (T, usize) {
    let mut at = 0;
    for (j, &v) in x.iter().enumerate() {
        if x[at].is_nan() {
            break;
        }
        if v.is_nan() || (if min { v < x[at] } else { v > x[at] }) {
            at = j;
        }
    }
    (x[at], at)
}

/// Positions as a constant of `T` (exact: every value here has fewer than 2²⁴ elements).
fn positions<'t, T: Element>(tape: &'t Tape<T>, p: &Tensor<usize>) -> Var<'t, T> {
    let data = p.data().iter().map(|&i| T::of(i as f64)).collect();
    tape.constant(Tensor::from_vec(data, p.shape()).expect("the shape of the positions"))
}

/// IEEE maximum: NaN if either is.
fn nan_max<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b > a {
        b
    } else {
        a
    }
}

fn nan_min<T: Element>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if b < a {
        b
    } else {
        a
    }
}

/// The axis `axis` of a value of rank `rank`, counted from the front (PyTorch's rule:
/// `-rank..rank`), or `None` when it is out of range.
fn resolve(axis: i64, rank: usize) -> Option<usize> {
    let (a, r) = (axis as i128, rank as i128);
    let front = if a < 0 { a + r } else { a };
    (0..r).contains(&front).then_some(front as usize)
}

/// The axes of a reduction, counted from the front, or why they are invalid (out of
/// range, or one named twice).
fn resolve_all(axes: &[i64], rank: usize) -> Result<Vec<usize>, &'static str> {
    let mut out = Vec::new();
    for &a in axes {
        let a = resolve(a, rank).ok_or("axis out of range")?;
        if out.contains(&a) {
            return Err("an axis named twice");
        }
        out.push(a);
    }
    Ok(out)
}

/// The error function by its definition: the Maclaurin series below 3, the continued
/// fraction of erfc (Laplace's) above, in f64.
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let z = x.abs();
    let e = if z < 3.0 {
        // 2/√π Σ (−1)ⁿ z^(2n+1) / (n! (2n+1))
        let (mut term, mut sum, mut n) = (z, z, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -z * z / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else if z < 10.0 {
        // erfc z = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), from the tail.
        let mut f = z;
        for k in (1..=80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    } else {
        1.0
    };
    e.copysign(x)
}

/// Numpy broadcasting of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Output length of a window along one axis: `(len + 2·pad − k)/stride + 1`.
fn window(len: usize, k: usize, stride: usize, pad: usize) -> Result<usize, &'static str> {
    let padded = (len as u128) + 2 * (pad as u128);
    if padded > usize::MAX as u128 {
        return Err("padded size overflows");
    }
    if (k as u128) > padded {
        return Err("kernel larger than the padded input");
    }
    Ok(((padded - k as u128) / stride as u128 + 1) as usize)
}

// ---------------------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------------------

/// The values of a program: each a `Var` on the tape, with its reference value when small.
struct Program<'t, T: Element> {
    tape: &'t Tape<T>,
    values: Vec<(Var<'t, T>, Option<Naive<T>>)>,
    /// The tracked inputs, for the backward check.
    leaves: Vec<Var<'t, T>>,
}

/// How many ops a program runs at most.
const MAX_STEPS: usize = 12;

impl<'t, T: Element> Program<'t, T> {
    fn run(input: &mut Bytes<'_>, report: &mut Report) {
        let tape = Tape::<T>::new();
        if input.byte().is_multiple_of(4) {
            tape.set_detect_anomaly(true);
        }
        let mut program = Program {
            tape: &tape,
            values: Vec::new(),
            leaves: Vec::new(),
        };
        for k in 0..1 + input.below(4) {
            program.new_input(input, report, k);
        }
        for step in 0..input.below(MAX_STEPS + 1) {
            if program.values.is_empty() {
                program.new_input(input, report, step);
                continue;
            }
            program.step(input, report, step);
        }
        program.backward(input, report);
    }

    /// A new input: a constructor called with a random shape; kept when it succeeds.
    fn new_input(&mut self, input: &mut Bytes<'_>, report: &mut Report, k: usize) {
        let shape = input.shape(4);
        let (seed, special, tracked) = (input.below(64), input.flag(), input.flag());
        let label = format!("input {k} of shape {shape:?}");
        let n = product(shape.iter().copied());
        let bytes = n.saturating_mul(size_of::<T>() as u128);
        let result = if !addressable::<T>(&shape) || bytes >= FAILS {
            report.calls += 1;
            let r = Tensor::<T>::try_zeros(&shape);
            expect_error(&label, r.as_ref().map(Tensor::shape), report);
            return;
        } else if n > SMALL as u128 {
            report.skipped += 1;
            return;
        } else {
            let data = (0..n as usize)
                .map(|j| element::<T>(seed, special, j))
                .collect();
            Tensor::from_vec(data, &shape)
        };
        report.calls += 1;
        let t = result.unwrap_or_else(|e| panic!("{label}: refused: {e}"));
        assert_eq!(t.shape(), shape.as_slice(), "{label}");
        let v = if tracked {
            let v = self.tape.var(t.clone());
            self.leaves.push(v.clone());
            v
        } else {
            self.tape.constant(t.clone())
        };
        self.values.push((v, Some(Naive::of(&t))));
    }

    fn pick(&self, input: &mut Bytes<'_>) -> usize {
        input.below(self.values.len())
    }

    /// A value of rank `rank` when there is one, mostly (else any value).
    fn pick_rank(&self, input: &mut Bytes<'_>, rank: usize) -> usize {
        let start = self.pick(input);
        if input.byte().is_multiple_of(8) {
            return start;
        }
        let n = self.values.len();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&k| self.var(k).shape().len() == rank)
            .unwrap_or(start)
    }

    fn var(&self, k: usize) -> &Var<'t, T> {
        &self.values[k].0
    }

    fn naive(&self, k: usize) -> Option<&Naive<T>> {
        self.values[k].1.as_ref()
    }

    /// The reference value of operand `k`, when `expect` is a small result worth
    /// computing by definition.
    fn naive_if(&self, expect: &Expect, k: usize) -> Option<&Naive<T>> {
        match expect {
            Expect::Valid { shape, work, .. } if small_work(shape, *work) => self.naive(k),
            _ => None,
        }
    }

    /// One op with random operands and parameters.
    fn step(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize) {
        let op = input.below(26);
        // Operands of the rank the op takes, mostly: rank 4 for convolutions and
        // pooling, rank ≥ 2 for products (matmul also takes vectors).
        let (a, b) = match op {
            16..=21 => (self.pick_rank(input, 4), self.pick_rank(input, 4)),
            2 => {
                let (r, s) = (1 + input.below(3), 1 + input.below(3));
                (self.pick_rank(input, r), self.pick_rank(input, s))
            }
            3 | 22 => {
                let r = 2 + input.below(2);
                (self.pick_rank(input, r), self.pick_rank(input, 2))
            }
            _ => (self.pick(input), self.pick(input)),
        };
        let sa = self.var(a).shape().to_vec();
        match op {
            0 => self.unary(input, report, step, a),
            1 => self.binary(input, report, step, a, b),
            2 => self.matmul(report, step, (a, b), None),
            3 => {
                let bias = input.flag().then(|| self.pick(input));
                self.linear(report, step, a, b, bias)
            }
            4 => {
                let mean = input.flag();
                let label = format!(
                    "step {step}: {} of {sa:?}",
                    if mean { "mean" } else { "sum" }
                );
                let expect = Expect::Valid {
                    shape: vec![],
                    buffers: vec![],
                    work: product(sa.iter().copied()),
                };
                let x = self.var(a).clone();
                let reference = self.naive_if(&expect, a).map(|x| {
                    let s = pairwise(&x.data);
                    let v = if mean { s / T::of(x.numel() as f64) } else { s };
                    Naive {
                        shape: vec![],
                        data: vec![v],
                    }
                });
                let call = || Ok(if mean { x.mean() } else { x.sum() });
                self.check(
                    &label,
                    report,
                    expect,
                    call,
                    reference,
                    x.value().numel().max(1),
                );
            }
            5 => self.sum_axes(input, report, step, a),
            6 => self.extremum_axis(input, report, step, a),
            7 => self.softmax(input, report, step, a),
            8 => {
                let shape = input.reshaped(&sa);
                let label = format!("step {step}: reshape {sa:?} to {shape:?}");
                let same = product(shape.iter().copied()) == product(sa.iter().copied());
                let expect = if !addressable::<T>(&shape) {
                    Expect::Invalid("not addressable")
                } else if !same {
                    Expect::Invalid("element counts differ")
                } else {
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![],
                        work: 0,
                    }
                };
                let reference = self.naive_if(&expect, a).map(|x| Naive {
                    shape: shape.clone(),
                    data: x.data.clone(),
                });
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_reshape(&shape),
                    reference,
                    1,
                );
            }
            9 => {
                let perm = input.permutation(sa.len());
                let label = format!("step {step}: permute {sa:?} by {perm:?}");
                let resolved = resolve_all(&perm, sa.len());
                let valid = perm.len() == sa.len() && resolved.is_ok();
                let perm_front = resolved.unwrap_or_default();
                let shape: Vec<usize> = if valid {
                    perm_front.iter().map(|&p| sa[p]).collect()
                } else {
                    vec![]
                };
                let expect = if valid {
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![shape.clone()],
                        work: product(shape.iter().copied()),
                    }
                } else {
                    Expect::Invalid("not a permutation")
                };
                let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
                    Naive::from_fn(&shape, |i| {
                        let mut src = vec![0; perm_front.len()];
                        for (k, &p) in perm_front.iter().enumerate() {
                            src[p] = i[k];
                        }
                        x.at(&src)
                    })
                });
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_permute(&perm),
                    reference,
                    1,
                );
            }
            10 => {
                let shape = input.shape(4);
                let label = format!("step {step}: broadcast {sa:?} to {shape:?}");
                let fits = sa.len() <= shape.len()
                    && (0..sa.len()).all(|i| {
                        let f = sa[sa.len() - 1 - i];
                        f == 1 || f == shape[shape.len() - 1 - i]
                    });
                let expect = if fits {
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![shape.clone()],
                        work: product(shape.iter().copied()),
                    }
                } else {
                    Expect::Invalid("does not broadcast")
                };
                let reference = self
                    .naive_if(&expect, a)
                    .filter(|_| fits)
                    .map(|x| Naive::from_fn(&shape, |i| x.at_broadcast(i)));
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_broadcast_to(&shape),
                    reference,
                    1,
                );
            }
            11 => {
                let given = input.axis(sa.len());
                let axis = resolve(given, sa.len());
                let dim = axis.map_or(0, |a| sa[a]);
                let start = input.index_below(dim + 1);
                let len = input.index_below(dim.saturating_sub(start) + 1);
                let label = format!("step {step}: narrow {sa:?} axis {given} {start}+{len}");
                let valid = axis.is_some() && (start as u128 + len as u128) <= dim as u128;
                let axis = axis.unwrap_or(0);
                let mut shape = sa.clone();
                let expect = if valid {
                    shape[axis] = len;
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![shape.clone()],
                        work: product(shape.iter().copied()),
                    }
                } else {
                    Expect::Invalid("range out of bounds")
                };
                let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
                    Naive::from_fn(&shape, |i| {
                        let mut src = i.to_vec();
                        src[axis] += start;
                        x.at(&src)
                    })
                });
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_narrow(given, start, len),
                    reference,
                    1,
                );
            }
            12 | 13 => {
                let n = input.below(4);
                let parts: Vec<usize> = (0..n)
                    .map(|k| {
                        if k == 0 {
                            a
                        } else {
                            self.pick_rank(input, sa.len())
                        }
                    })
                    .collect();
                let axis = input.axis(sa.len() + usize::from(op == 13));
                self.concat(report, step, &parts, axis, op == 13)
            }
            14 => {
                let given = input.axis(sa.len());
                let axis = resolve(given, sa.len());
                let dim = axis.map_or(0, |a| sa[a]);
                let index: Vec<usize> = (0..input.below(6))
                    .map(|_| input.index_below(dim))
                    .collect();
                let label = format!("step {step}: index_select {sa:?} axis {given} at {index:?}");
                let valid = axis.is_some() && index.iter().all(|&i| i < dim);
                let axis = axis.unwrap_or(0);
                let mut shape = sa.clone();
                if valid {
                    shape[axis] = index.len();
                }
                let expect = if !valid {
                    Expect::Invalid("index out of range")
                } else if !addressable::<T>(&shape) {
                    Expect::Invalid("not addressable")
                } else {
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![shape.clone()],
                        work: product(shape.iter().copied()),
                    }
                };
                let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
                    Naive::from_fn(&shape, |i| {
                        let mut src = i.to_vec();
                        src[axis] = index[i[axis]];
                        x.at(&src)
                    })
                });
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_index_select(given, &index),
                    reference,
                    1,
                );
            }
            15 => {
                let given = input.axis(sa.len());
                // PyTorch's index shapes: at most the input's size on the other axes.
                let shape: Vec<usize> = sa
                    .iter()
                    .map(|&d| match input.byte() % 4 {
                        0 | 1 => d,
                        2 => input.below(d.min(3) + 1),
                        _ => input.dim().min(3),
                    })
                    .collect();
                let seed = input.below(8);
                let n = product(shape.iter().copied());
                if n > SMALL as u128 || !addressable::<usize>(&shape) {
                    report.skipped += 1;
                    return;
                }
                let axis = resolve(given, sa.len());
                let len = axis.map_or(1, |a| sa[a]);
                // Mostly within the axis, sometimes one past it.
                let past = usize::from(input.byte().is_multiple_of(4));
                let picks: Vec<usize> = (0..n as usize)
                    .map(|j| (seed + j * 5) % (len + past).max(1))
                    .collect();
                let index = Tensor::from_vec(picks.clone(), &shape).expect("an index tensor");
                let label = format!("step {step}: gather {sa:?} axis {given} by {shape:?}");
                let valid = axis.is_some_and(|axis| {
                    shape.len() == sa.len()
                        && (0..sa.len()).all(|d| d == axis || shape[d] <= sa[d])
                        && picks.iter().all(|&p| p < sa[axis])
                });
                let axis = axis.unwrap_or(0);
                let expect = if valid {
                    Expect::Valid {
                        shape: shape.clone(),
                        buffers: vec![shape.clone()],
                        work: n,
                    }
                } else {
                    Expect::Invalid("bad index")
                };
                let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
                    let idx = Naive {
                        shape: shape.clone(),
                        data: picks.clone(),
                    };
                    Naive::from_fn(&shape, |i| {
                        let mut src = i.to_vec();
                        let s = strides(&idx.shape);
                        src[axis] = idx.data[i.iter().zip(&s).map(|(i, s)| i * s).sum::<usize>()];
                        x.at(&src)
                    })
                });
                let x = self.var(a).clone();
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_gather(given, &index),
                    reference,
                    1,
                );
            }
            16 => {
                let bias = input.flag().then(|| self.pick(input));
                let (stride, padding) = (input.pair(), input.pair());
                self.conv2d(report, step, a, b, bias, stride, padding)
            }
            17 | 18 => {
                let (kernel, stride, padding) = (input.pair(), input.pair(), input.pair());
                self.pool(report, step, a, kernel, stride, padding, op == 17)
            }
            19 => {
                let label = format!("step {step}: global_avg_pool2d of {sa:?}");
                let expect = if sa.len() != 4 {
                    Expect::Invalid("rank")
                } else {
                    Expect::Valid {
                        shape: sa[..2].to_vec(),
                        buffers: vec![sa[..2].to_vec(); 2],
                        work: product(sa.iter().copied()),
                    }
                };
                let reference = self
                    .naive_if(&expect, a)
                    .filter(|_| sa.len() == 4)
                    .map(|x| {
                        let plane = sa[2] * sa[3];
                        Naive::from_fn(&sa[..2], |i| {
                            let base = (i[0] * sa[1] + i[1]) * plane;
                            pairwise(&x.data[base..base + plane]) / T::of(plane as f64)
                        })
                    });
                let x = self.var(a).clone();
                let terms = if sa.len() == 4 {
                    sa[2].saturating_mul(sa[3])
                } else {
                    1
                };
                self.check(
                    &label,
                    report,
                    expect,
                    || x.try_global_avg_pool2d(),
                    reference,
                    terms,
                );
            }
            20 | 21 => {
                let (extra, stride, padding) = (input.pair(), input.pair(), input.pair());
                self.conv_adjoint(report, step, a, b, extra, stride, padding, op == 20)
            }
            23 => self.where_(input, report, step, (a, b)),
            24 => self.logsumexp(input, report, step, a),
            25 => self.extremum_all(input, report, step, a),
            _ => {
                // A tensor-level product with transposes (the hand-written-backward form).
                let (ta, tb) = (input.flag(), input.flag());
                self.matmul(report, step, (a, b), Some((ta, tb)))
            }
        }
    }

    /// Calls `call` as `expect` says it must behave, compares with `reference` (when the
    /// value is small), and keeps a successful result as a new value. `terms` is how many
    /// terms each element sums (for the tolerance).
    fn check(
        &mut self,
        label: &str,
        report: &mut Report,
        expect: Expect,
        call: impl FnOnce() -> Result<Var<'t, T>, Error>,
        reference: Option<Naive<T>>,
        terms: usize,
    ) {
        match expect {
            Expect::Invalid(why) => {
                report.calls += 1;
                let r = call();
                let shape = r.as_ref().map(|v| v.shape().to_vec());
                assert!(
                    shape.is_err(),
                    "{label}: the reference says {why}, got Ok({:?})",
                    shape.ok()
                );
                expect_error(label, shape.as_deref().map_err(|e| *e), report);
            }
            Expect::Valid {
                shape,
                buffers,
                work,
            } => {
                // A result that cannot be addressed is an error before anything is
                // allocated; otherwise the first buffer that cannot be allocated is.
                let mut must_fail = !addressable::<T>(&shape);
                for buffer in buffers.iter().take_while(|_| !must_fail) {
                    let bytes =
                        product(buffer.iter().copied()).saturating_mul(size_of::<T>() as u128);
                    if !addressable::<T>(buffer) || bytes >= FAILS {
                        must_fail = true;
                        break;
                    }
                    if product(buffer.iter().copied()) > MAX_BUFFER {
                        report.skipped += 1;
                        return;
                    }
                }
                if !must_fail && work > MAX_WORK {
                    report.skipped += 1;
                    return;
                }
                report.calls += 1;
                let r = call();
                if must_fail {
                    let got = r.as_ref().map(|v| v.shape().to_vec());
                    assert!(
                        got.is_err(),
                        "{label}: a result of {shape:?} cannot be allocated, got Ok"
                    );
                    expect_error(label, got.as_deref().map_err(|e| *e), report);
                    return;
                }
                let v = r.unwrap_or_else(|e| {
                    panic!("{label}: the reference computes {shape:?}, got {e}")
                });
                assert_eq!(v.shape(), shape.as_slice(), "{label}: shape");
                let _ = v.value().to_string(); // printing visits at most 6 entries per axis
                let reference = reference.filter(|r| r.numel() <= SMALL);
                if let Some(want) = &reference {
                    assert_eq!(want.shape, shape, "{label}: the reference's own shape");
                    compare(label, v.value(), want, terms);
                    report.compared += 1;
                }
                self.values.push((v, reference));
            }
        }
    }

    fn unary(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let kind = input.below(19);
        let c: T = input.scalar();
        let d: T = input.scalar();
        let sa = self.var(a).shape().to_vec();
        const NAMES: [&str; 19] = [
            "relu",
            "exp",
            "ln",
            "sqrt",
            "tanh",
            "sigmoid",
            "abs",
            "softplus",
            "gelu",
            "neg",
            "leaky_relu",
            "powf",
            "clamp",
            "x+c",
            "x*c",
            "c/x",
            "c-x",
            "erf",
            "gelu (exact)",
        ];
        let label = format!("step {step}: {} (c = {c}, d = {d}) of {sa:?}", NAMES[kind]);
        let (lo, hi) = (nan_min(c, d), nan_max(c, d));
        let f = move |x: T| -> T {
            match kind {
                // max(x, 0), NaN kept.
                0 => {
                    if x.is_nan() || x > T::zero() {
                        x
                    } else {
                        T::zero()
                    }
                }
                1 => x.exp(),
                2 => x.ln(),
                3 => x.sqrt(),
                4 => x.tanh(),
                5 => {
                    if x >= T::zero() {
                        T::one() / (T::one() + (-x).exp())
                    } else {
                        x.exp() / (T::one() + x.exp())
                    }
                }
                6 => x.abs(),
                7 => x.max(T::zero()) + (-x.abs()).exp().ln_1p(),
                8 => {
                    let k = T::of((2.0 / std::f64::consts::PI).sqrt());
                    let cl = x.max(T::of(-10.0)).min(T::of(10.0));
                    T::of(0.5) * x * (T::one() + (k * (x + cl * cl * cl * T::of(0.044715))).tanh())
                }
                9 => -x,
                10 => {
                    if x > T::zero() {
                        x
                    } else {
                        c * x
                    }
                }
                11 => x.powf(c),
                12 => nan_min(nan_max(x, lo), hi),
                13 => x + c,
                14 => x * c,
                15 => c / x,
                16 => c - x,
                17 => T::of(erf(x.to_f64().unwrap_or(f64::NAN))),
                _ => {
                    let v = x.to_f64().unwrap_or(f64::NAN);
                    T::of(0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)))
                }
            }
        };
        let clamp_invalid = kind == 12 && (lo.is_nan() || hi.is_nan());
        let expect = if clamp_invalid {
            Expect::Invalid("a NaN bound")
        } else {
            Expect::Valid {
                shape: sa.clone(),
                buffers: vec![sa.clone()],
                work: product(sa.iter().copied()),
            }
        };
        let reference = self.naive_if(&expect, a).map(|x| Naive {
            shape: x.shape.clone(),
            data: x.data.iter().map(|&v| f(v)).collect(),
        });
        let x = self.var(a).clone();
        let call = move || -> Result<Var<'t, T>, Error> {
            Ok(match kind {
                0 => x.relu(),
                1 => x.exp(),
                2 => x.ln(),
                3 => x.sqrt(),
                4 => x.tanh(),
                5 => x.sigmoid(),
                6 => x.abs(),
                7 => x.softplus(),
                8 => x.gelu(autograd::GeluApproximation::Tanh),
                9 => -&x,
                10 => x.leaky_relu(c),
                11 => x.powf(c),
                12 => x.try_clamp(lo, hi)?,
                13 => &x + c,
                14 => &x * c,
                15 => unary_rdiv(c, &x),
                16 => unary_rsub(c, &x),
                17 => x.erf(),
                _ => x.gelu(autograd::GeluApproximation::None),
            })
        };
        // The GELUs compose ops (and the reference erf sums a series): their rounding may
        // differ in the last bits.
        let terms = match kind {
            8 => 8,
            17 | 18 => 64,
            _ => 1,
        };
        self.check(&label, report, expect, call, reference, terms);
    }

    fn binary(
        &mut self,
        input: &mut Bytes<'_>,
        report: &mut Report,
        step: usize,
        a: usize,
        b: usize,
    ) {
        let kind = input.below(7);
        const NAMES: [&str; 7] = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"];
        let (sa, sb) = (self.var(a).shape().to_vec(), self.var(b).shape().to_vec());
        let label = format!("step {step}: {} of {sa:?} and {sb:?}", NAMES[kind]);
        let shape = broadcast(&sa, &sb);
        let expect = match &shape {
            None => Expect::Invalid("shapes do not broadcast"),
            Some(s) => Expect::Valid {
                shape: s.clone(),
                buffers: vec![s.clone()],
                work: product(s.iter().copied()),
            },
        };
        let f = move |x: T, y: T| match kind {
            0 => x + y,
            1 => x - y,
            2 => x * y,
            3 => x / y,
            4 => nan_max(x, y),
            5 => nan_min(x, y),
            _ => x.powf(y),
        };
        let reference = match (self.naive_if(&expect, a), self.naive_if(&expect, b), &shape) {
            (Some(x), Some(y), Some(s)) => Some(Naive::from_fn(s, |i| {
                f(x.at_broadcast(i), y.at_broadcast(i))
            })),
            _ => None,
        };
        let (x, y) = (self.var(a).clone(), self.var(b).clone());
        let call = move || match kind {
            0 => x.try_add(&y),
            1 => x.try_sub(&y),
            2 => x.try_mul(&y),
            3 => x.try_div(&y),
            4 => x.try_maximum(&y),
            5 => x.try_minimum(&y),
            _ => x.try_pow(&y),
        };
        self.check(&label, report, expect, call, reference, 1);
    }

    /// The shape rule of `op(a) · op(b)` (shared by matmul and matmul_t).
    fn product_shape(
        sa: &[usize],
        ta: bool,
        sb: &[usize],
        tb: bool,
    ) -> Result<(Vec<usize>, usize), &'static str> {
        if sa.len() < 2 || sb.len() < 2 {
            return Err("rank below 2");
        }
        let dims = |s: &[usize], t: bool| {
            let (r, c) = (s[s.len() - 2], s[s.len() - 1]);
            if t { (c, r) } else { (r, c) }
        };
        let ((m, k), (k2, n)) = (dims(sa, ta), dims(sb, tb));
        if k != k2 {
            return Err("inner dimensions differ");
        }
        // torch.matmul: the batch dimensions broadcast.
        let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
        let mut shape = broadcast(ba, bb).ok_or("batch dimensions do not broadcast")?;
        shape.extend([m, n]);
        Ok((shape, k))
    }

    fn product_reference(
        x: &Naive<T>,
        ta: bool,
        y: &Naive<T>,
        tb: bool,
        shape: &[usize],
        k: usize,
    ) -> Naive<T> {
        let r = shape.len();
        Naive::from_fn(shape, |i| {
            let at = |t: &Naive<T>, trans: bool, row: usize, col: usize| {
                // The operand's own batch index: aligned from the right, 0 where it is 1.
                let own = &t.shape[..t.shape.len() - 2];
                let skip = r - 2 - own.len();
                let mut index: Vec<usize> = (0..own.len())
                    .map(|d| if own[d] == 1 { 0 } else { i[skip + d] })
                    .collect();
                if trans {
                    index.extend([col, row])
                } else {
                    index.extend([row, col])
                }
                t.at(&index)
            };
            let terms: Vec<T> = (0..k)
                .map(|p| at(x, ta, i[r - 2], p) * at(y, tb, p, i[r - 1]))
                .collect();
            pairwise(&terms)
        })
    }

    /// `a · b` through `Var::try_matmul` (`transposes` `None`), or `op(a) · op(b)`
    /// through the tensor-level `try_matmul_t` with the given transposes.
    fn matmul(
        &mut self,
        report: &mut Report,
        step: usize,
        (a, b): (usize, usize),
        transposes: Option<(bool, bool)>,
    ) {
        let (sa, sb) = (self.var(a).shape().to_vec(), self.var(b).shape().to_vec());
        let (ta, tb) = transposes.unwrap_or((false, false));
        let mark = |t: bool| if t { "ᵀ" } else { "" };
        let label = format!(
            "step {step}: matmul {sa:?}{} · {sb:?}{}",
            mark(ta),
            mark(tb)
        );
        // torch.matmul's vectors (Var::try_matmul only): a 1-d left operand is the row
        // [1, k], a 1-d right operand the column [k, 1], and the result loses that axis.
        let vectors = transposes.is_none() && (sa.len() < 2 || sb.len() < 2);
        let (row, col) = (vectors && sa.len() == 1, vectors && sb.len() == 1);
        let as_matrix = |s: &[usize], v: bool, row: bool| -> Vec<usize> {
            match (v, row) {
                (false, _) => s.to_vec(),
                (true, true) => vec![1, s[0]],
                (true, false) => vec![s[0], 1],
            }
        };
        let (ma, mb) = (as_matrix(&sa, row, true), as_matrix(&sb, col, false));
        let rule = if vectors && (sa.is_empty() || sb.is_empty()) {
            Err("a 0-d operand")
        } else {
            Self::product_shape(&ma, ta, &mb, tb)
        };
        let (expect, reference, terms) = match rule {
            Err(why) => (Expect::Invalid(why), None, 1),
            Ok((matrices, k)) => {
                let work = product(matrices.iter().copied()).saturating_mul(k as u128);
                let r = matrices.len();
                let shape: Vec<usize> = (0..r)
                    .filter(|&d| (!row || d != r - 2) && (!col || d != r - 1))
                    .map(|d| matrices[d])
                    .collect();
                let reference = match (self.naive(a), self.naive(b)) {
                    (Some(x), Some(y)) if small_work(&matrices, work) => {
                        let (x, y) = (x.reshaped(&ma), y.reshaped(&mb));
                        let p = Self::product_reference(&x, ta, &y, tb, &matrices, k);
                        Some(p.reshaped(&shape))
                    }
                    _ => None,
                };
                let buffers = vec![matrices];
                (
                    Expect::Valid {
                        buffers,
                        shape,
                        work,
                    },
                    reference,
                    k,
                )
            }
        };
        let (x, y) = (self.var(a).clone(), self.var(b).clone());
        let tape = self.tape;
        let call = move || match transposes {
            None => x.try_matmul(&y),
            Some(_) => x
                .value()
                .try_matmul_t(ta, y.value(), tb)
                .map(|t| tape.constant(t)),
        };
        self.check(&label, report, expect, call, reference, terms);
    }

    fn linear(
        &mut self,
        report: &mut Report,
        step: usize,
        a: usize,
        w: usize,
        bias: Option<usize>,
    ) {
        let (sx, sw) = (self.var(a).shape().to_vec(), self.var(w).shape().to_vec());
        let sbias = bias.map(|b| self.var(b).shape().to_vec());
        let label = format!("step {step}: linear {sx:?} by {sw:?} + {sbias:?}");
        let expect = if sw.len() != 2 {
            Expect::Invalid("weight rank")
        } else if sx.is_empty() || sx[sx.len() - 1] != sw[1] {
            Expect::Invalid("in features")
        } else if sbias.as_ref().is_some_and(|b| b.as_slice() != [sw[0]]) {
            Expect::Invalid("bias shape")
        } else {
            let mut shape = sx.clone();
            *shape.last_mut().expect("rank ≥ 1") = sw[0];
            let work = product(shape.iter().copied()).saturating_mul(sw[1] as u128);
            Expect::Valid {
                buffers: vec![shape.clone()],
                shape,
                work,
            }
        };
        let reference = match (&expect, self.naive(a), self.naive(w)) {
            (Expect::Valid { shape, work, .. }, Some(x), Some(wt)) if small_work(shape, *work) => {
                let bias = bias.map(|b| self.naive(b).cloned());
                match bias {
                    Some(None) => None,
                    bias => {
                        let bias = bias.flatten();
                        let r = shape.len();
                        Some(Naive::from_fn(shape, |i| {
                            let row = &i[..r - 1];
                            let terms: Vec<T> = (0..sw[1])
                                .map(|p| {
                                    let mut xi = row.to_vec();
                                    xi.push(p);
                                    x.at(&xi) * wt.at(&[i[r - 1], p])
                                })
                                .collect();
                            let b = bias.as_ref().map_or(T::zero(), |b| b.data[i[r - 1]]);
                            pairwise(&terms) + b
                        }))
                    }
                }
            }
            _ => None,
        };
        let (x, wv) = (self.var(a).clone(), self.var(w).clone());
        let bv = bias.map(|b| self.var(b).clone());
        let terms = sw.get(1).copied().unwrap_or(1) + 1;
        self.check(
            &label,
            report,
            expect,
            || x.try_linear(&wv, bv.as_ref()),
            reference,
            terms,
        );
    }

    fn sum_axes(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let rank = self.var(a).shape().len();
        let given: Vec<i64> = (0..input.below(4)).map(|_| input.axis(rank)).collect();
        let (keepdim, mean) = (input.flag(), input.flag());
        let sa = self.var(a).shape().to_vec();
        let label = format!(
            "step {step}: {} over {given:?} (keepdim {keepdim}) of {sa:?}",
            if mean { "mean" } else { "sum" }
        );
        let resolved = resolve_all(&given, rank);
        let valid = resolved.is_ok();
        let why = resolved.as_ref().err().copied().unwrap_or("");
        let axes = resolved.unwrap_or_default();
        let reduced = |d: usize| axes.contains(&d);
        let kd: Vec<usize> = (0..sa.len())
            .map(|d| if reduced(d) { 1 } else { sa[d] })
            .collect();
        let shape: Vec<usize> = if keepdim {
            kd.clone()
        } else {
            (0..sa.len())
                .filter(|&d| !reduced(d))
                .map(|d| sa[d])
                .collect()
        };
        let expect = if valid {
            Expect::Valid {
                shape: shape.clone(),
                buffers: vec![kd.clone()],
                work: product(sa.iter().copied()),
            }
        } else {
            Expect::Invalid(why)
        };
        let count: usize = if valid {
            (0..sa.len())
                .filter(|&d| reduced(d))
                .map(|d| sa[d])
                .product()
        } else {
            1
        };
        let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
            let mut sums = Naive::from_fn(&kd, |_| T::zero());
            let s = strides(&kd);
            let mut groups: Vec<Vec<T>> = vec![Vec::new(); sums.numel()];
            let _ = Naive::from_fn(&sa, |i| {
                let at: usize = (0..sa.len())
                    .map(|d| if reduced(d) { 0 } else { i[d] * s[d] })
                    .sum();
                groups[at].push(x.at(i));
                T::zero()
            });
            for (out, g) in sums.data.iter_mut().zip(&groups) {
                *out = pairwise(g);
                if mean {
                    *out /= T::of(count as f64);
                }
            }
            Naive {
                shape: shape.clone(),
                data: sums.data,
            }
        });
        let x = self.var(a).clone();
        let call = || {
            if mean {
                x.try_mean_axes(&given, keepdim)
            } else {
                x.try_sum_axes(&given, keepdim)
            }
        };
        self.check(&label, report, expect, call, reference, count.max(1));
    }

    /// `max_axis` / `min_axis`, or `argmax_axis` / `argmin_axis` (whose positions are kept
    /// as a constant of `T`, compared exactly).
    fn extremum_axis(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let (given, keepdim) = (input.axis(self.var(a).shape().len()), input.flag());
        let (min, arg) = (input.flag(), input.flag());
        let sa = self.var(a).shape().to_vec();
        let name = ["max", "min", "argmax", "argmin"][usize::from(min) + 2 * usize::from(arg)];
        let label = format!("step {step}: {name} over axis {given} (keepdim {keepdim}) of {sa:?}");
        let resolved = resolve(given, sa.len()).filter(|&a| sa[a] > 0);
        let valid = resolved.is_some();
        let axis = resolved.unwrap_or(0);
        let mut shape = sa.clone();
        if valid {
            if keepdim {
                shape[axis] = 1;
            } else {
                shape.remove(axis);
            }
        }
        let expect = if valid {
            Expect::Valid {
                shape: shape.clone(),
                buffers: vec![shape.clone(), shape.clone()],
                work: product(sa.iter().copied()),
            }
        } else {
            Expect::Invalid("axis out of range or empty")
        };
        let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
            let mut kd = sa.clone();
            kd[axis] = 1;
            let out = Naive::from_fn(&kd, |i| {
                let mut src = i.to_vec();
                let slice: Vec<T> = (0..sa[axis])
                    .map(|j| {
                        src[axis] = j;
                        x.at(&src)
                    })
                    .collect();
                let (best, at) = extremum(&slice, min);
                if arg { T::of(at as f64) } else { best }
            });
            Naive {
                shape: shape.clone(),
                data: out.data,
            }
        });
        let x = self.var(a).clone();
        let tape = self.tape;
        let call = move || match (min, arg) {
            (false, false) => x.try_max_axis(given, keepdim),
            (true, false) => x.try_min_axis(given, keepdim),
            (false, true) => x
                .try_argmax_axis(given, keepdim)
                .map(|p| positions(tape, &p)),
            (true, true) => x
                .try_argmin_axis(given, keepdim)
                .map(|p| positions(tape, &p)),
        };
        self.check(&label, report, expect, call, reference, 1);
    }

    /// `max()` / `min()` of all elements, or `argmax()` / `argmin()` (kept as a constant).
    fn extremum_all(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let (min, arg) = (input.flag(), input.flag());
        let sa = self.var(a).shape().to_vec();
        let name = ["max", "min", "argmax", "argmin"][usize::from(min) + 2 * usize::from(arg)];
        let label = format!("step {step}: {name}() of {sa:?}");
        let expect = if product(sa.iter().copied()) == 0 {
            Expect::Invalid("no element")
        } else {
            Expect::Valid {
                shape: vec![],
                buffers: vec![],
                work: product(sa.iter().copied()),
            }
        };
        let reference = self.naive_if(&expect, a).map(|x| {
            let (best, at) = extremum(&x.data, min);
            Naive {
                shape: vec![],
                data: vec![if arg { T::of(at as f64) } else { best }],
            }
        });
        let x = self.var(a).clone();
        let tape = self.tape;
        let call = move || match (min, arg) {
            (false, false) => x.try_max(),
            (true, false) => x.try_min(),
            (false, true) => x.try_argmax().map(|p| positions(tape, &p)),
            (true, true) => x.try_argmin().map(|p| positions(tape, &p)),
        };
        self.check(&label, report, expect, call, reference, 1);
    }

    /// `logsumexp` over a list of axes (negative, out of range or repeated ones included).
    fn logsumexp(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let rank = self.var(a).shape().len();
        let given: Vec<i64> = (0..input.below(4)).map(|_| input.axis(rank)).collect();
        let keepdim = input.flag();
        let sa = self.var(a).shape().to_vec();
        let label = format!("step {step}: logsumexp over {given:?} (keepdim {keepdim}) of {sa:?}");
        let resolved = resolve_all(&given, rank);
        let expect = match &resolved {
            Err(why) => Expect::Invalid(why),
            Ok(axes) => {
                let kd: Vec<usize> = (0..rank)
                    .map(|d| if axes.contains(&d) { 1 } else { sa[d] })
                    .collect();
                let shape = (0..rank)
                    .filter(|d| keepdim || !axes.contains(d))
                    .map(|d| kd[d])
                    .collect();
                Expect::Valid {
                    shape,
                    buffers: vec![kd],
                    work: product(sa.iter().copied()),
                }
            }
        };
        let axes = resolved.unwrap_or_default();
        let count = axes.iter().map(|&d| sa[d]).product::<usize>();
        let reference = self.naive_if(&expect, a).map(|x| {
            let Expect::Valid { shape, .. } = &expect else {
                unreachable!("a reference only for a valid call")
            };
            let kd: Vec<usize> = (0..rank)
                .map(|d| if axes.contains(&d) { 1 } else { sa[d] })
                .collect();
            let s = strides(&kd);
            let mut groups: Vec<Vec<T>> = vec![Vec::new(); kd.iter().product()];
            let _ = Naive::from_fn(&sa, |i| {
                let at: usize = (0..rank)
                    .filter(|d| !axes.contains(d))
                    .map(|d| i[d] * s[d])
                    .sum();
                groups[at].push(x.at(i));
                T::zero()
            });
            // PyTorch's: NaN if the slice holds one; an infinite maximum is the result
            // (nothing to subtract); −∞ for an empty slice.
            let data = groups
                .iter()
                .map(|g| {
                    if g.iter().any(|v| v.is_nan()) {
                        return T::nan();
                    }
                    let m = g.iter().fold(T::neg_infinity(), |m, &v| nan_max(m, v));
                    if !m.is_finite() {
                        return m;
                    }
                    m + pairwise(&g.iter().map(|&v| (v - m).exp()).collect::<Vec<_>>()).ln()
                })
                .collect();
            Naive {
                shape: shape.clone(),
                data,
            }
        });
        let x = self.var(a).clone();
        let call = || x.try_logsumexp(&given, keepdim);
        self.check(&label, report, expect, call, reference, count.max(1));
    }

    /// `where(mask, a, b)`: a `Tensor<bool>` mask of a random shape, or a value used as a
    /// 0/1 mask (an error unless it holds only 0 and 1).
    fn where_(
        &mut self,
        input: &mut Bytes<'_>,
        report: &mut Report,
        step: usize,
        (a, b): (usize, usize),
    ) {
        let m = self.pick(input);
        let sm = self.var(m).shape().to_vec();
        let (as_bool, seed) = (!input.byte().is_multiple_of(4), input.below(8));
        let n = product(sm.iter().copied());
        if as_bool && (n > SMALL as u128 || !addressable::<bool>(&sm)) {
            report.skipped += 1;
            return;
        }
        let bits: Vec<bool> = (0..if as_bool { n as usize } else { 0 })
            .map(|j| (seed + j * 3) % 5 < 2)
            .collect();
        let (sa, sb) = (self.var(a).shape().to_vec(), self.var(b).shape().to_vec());
        let label = format!(
            "step {step}: where({} {sm:?}, {sa:?}, {sb:?})",
            if as_bool { "bool" } else { "0/1" }
        );
        // The mask as booleans, when it is one (a value holding anything but 0 and 1 is
        // not; a value too large to know stays unknown).
        let mask: Option<Naive<bool>> = if as_bool {
            Some(Naive {
                shape: sm.clone(),
                data: bits.clone(),
            })
        } else {
            self.naive(m).and_then(|v| {
                let data: Option<Vec<bool>> = v
                    .data
                    .iter()
                    .map(|&e| (e == T::zero() || e == T::one()).then_some(e == T::one()))
                    .collect();
                data.map(|data| Naive {
                    shape: v.shape.clone(),
                    data,
                })
            })
        };
        let shape = broadcast(&sm, &sa).and_then(|s| broadcast(&s, &sb));
        let expect = match &shape {
            _ if !as_bool && self.naive(m).is_none() => {
                report.skipped += 1; // too large to tell whether it is a 0/1 mask
                return;
            }
            _ if mask.is_none() => Expect::Invalid("the mask holds a value other than 0 and 1"),
            None => Expect::Invalid("shapes do not broadcast"),
            Some(s) => Expect::Valid {
                shape: s.clone(),
                buffers: vec![s.clone()],
                work: product(s.iter().copied()),
            },
        };
        let reference = match (
            &mask,
            self.naive_if(&expect, a),
            self.naive_if(&expect, b),
            &shape,
        ) {
            (Some(c), Some(x), Some(y), Some(s)) => Some(Naive::from_fn(s, |i| {
                if c.at_broadcast(i) {
                    x.at_broadcast(i)
                } else {
                    y.at_broadcast(i)
                }
            })),
            _ => None,
        };
        let (x, y) = (self.var(a).clone(), self.var(b).clone());
        let mask_value = self.var(m).value().clone();
        let call = move || {
            if as_bool {
                let mask = Tensor::from_vec(bits, &sm)?;
                Var::try_where_(&mask, &x, &y)
            } else {
                Var::try_where_(&mask_value, &x, &y)
            }
        };
        self.check(&label, report, expect, call, reference, 1);
    }

    fn softmax(&mut self, input: &mut Bytes<'_>, report: &mut Report, step: usize, a: usize) {
        let (given, log) = (input.axis(self.var(a).shape().len()), input.flag());
        let sa = self.var(a).shape().to_vec();
        let label = format!(
            "step {step}: {} over axis {given} of {sa:?}",
            if log { "log_softmax" } else { "softmax" }
        );
        let resolved = resolve(given, sa.len());
        let valid = resolved.is_some();
        let axis = resolved.unwrap_or(0);
        let expect = if valid {
            Expect::Valid {
                shape: sa.clone(),
                buffers: vec![sa.clone()],
                work: product(sa.iter().copied()),
            }
        } else {
            Expect::Invalid("axis out of range")
        };
        let reference = self.naive_if(&expect, a).filter(|_| valid).map(|x| {
            Naive::from_fn(&sa, |i| {
                let mut src = i.to_vec();
                let row: Vec<T> = (0..sa[axis])
                    .map(|j| {
                        src[axis] = j;
                        x.at(&src)
                    })
                    .collect();
                let v = x.at(i);
                // A row with a NaN or +∞ (∞ − ∞) is NaN throughout.
                if row.iter().any(|r| r.is_nan() || *r == T::infinity()) {
                    return T::nan();
                }
                let m = row.iter().fold(T::neg_infinity(), |m, &r| m.max(r));
                let sum = pairwise(&row.iter().map(|&r| (r - m).exp()).collect::<Vec<_>>());
                if log {
                    v - m - sum.ln()
                } else {
                    (v - m).exp() / sum
                }
            })
        });
        let x = self.var(a).clone();
        let len = if valid { sa[axis] } else { 1 };
        let call = || {
            if log {
                x.try_log_softmax(given)
            } else {
                x.try_softmax(given)
            }
        };
        self.check(&label, report, expect, call, reference, len.max(1));
    }

    fn concat(
        &mut self,
        report: &mut Report,
        step: usize,
        parts: &[usize],
        given: i64,
        stack: bool,
    ) {
        let shapes: Vec<Vec<usize>> = parts
            .iter()
            .map(|&p| self.var(p).shape().to_vec())
            .collect();
        let label = format!(
            "step {step}: {} of {shapes:?} along {given}",
            if stack { "stack" } else { "concat" }
        );
        // The axis, counted from the front; a stack's new axis may also be the last.
        let rank = shapes.first().map_or(0, |f| f.len() + usize::from(stack));
        let resolved = resolve(given, rank);
        let axis = resolved.unwrap_or(usize::MAX);
        // A stack is a concat of the parts with a 1 inserted at `axis`.
        let pieces: Vec<Vec<usize>> = if stack && shapes.first().is_some_and(|f| axis <= f.len()) {
            shapes
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    if axis <= s.len() {
                        s.insert(axis, 1);
                    }
                    s
                })
                .collect()
        } else {
            shapes.clone()
        };
        let rule = || -> Result<Vec<usize>, &'static str> {
            let first = pieces.first().ok_or("no inputs")?;
            if resolved.is_none() {
                return Err("axis");
            }
            if stack && shapes.iter().any(|s| s != &shapes[0]) {
                return Err("stack: shapes differ");
            }
            let mut out = first.clone();
            let mut total: u128 = 0;
            for s in &pieces {
                if s.len() != first.len() || (0..s.len()).any(|d| d != axis && s[d] != first[d]) {
                    return Err("shapes differ");
                }
                total += s[axis] as u128;
            }
            out[axis] = total.min(usize::MAX as u128) as usize;
            if total > usize::MAX as u128 || !addressable::<T>(&out) {
                return Err("not addressable");
            }
            Ok(out)
        };
        let expect = match rule() {
            Err(why) => Expect::Invalid(why),
            Ok(shape) => Expect::Valid {
                work: product(shape.iter().copied()),
                buffers: vec![shape.clone()],
                shape,
            },
        };
        let naive: Option<Vec<Naive<T>>> = parts.iter().map(|&p| self.naive(p).cloned()).collect();
        let reference = match (&expect, naive) {
            (Expect::Valid { shape, work, .. }, Some(xs)) if small_work(shape, *work) => {
                Some(Naive::from_fn(shape, |i| {
                    let mut j = i[axis];
                    for (x, s) in xs.iter().zip(&pieces) {
                        if j < s[axis] {
                            let mut src = i.to_vec();
                            src[axis] = j;
                            if stack {
                                src.remove(axis);
                            }
                            return x.at(&src);
                        }
                        j -= s[axis];
                    }
                    unreachable!("index within the total")
                }))
            }
            _ => None,
        };
        let vars: Vec<Var<'t, T>> = parts.iter().map(|&p| self.var(p).clone()).collect();
        let call = || {
            let refs: Vec<&Var<'t, T>> = vars.iter().collect();
            if stack {
                Var::try_stack(&refs, given)
            } else {
                Var::try_concat(&refs, given)
            }
        };
        self.check(&label, report, expect, call, reference, 1);
    }

    #[allow(clippy::too_many_arguments)]
    fn conv2d(
        &mut self,
        report: &mut Report,
        step: usize,
        a: usize,
        w: usize,
        bias: Option<usize>,
        stride: (usize, usize),
        padding: (usize, usize),
    ) {
        let (sx, sw) = (self.var(a).shape().to_vec(), self.var(w).shape().to_vec());
        let sbias = bias.map(|b| self.var(b).shape().to_vec());
        let label = format!(
            "step {step}: conv2d {sx:?} by {sw:?} + {sbias:?}, stride {stride:?}, padding {padding:?}"
        );
        let expect = match conv_rule::<T>(&sx, &sw, stride, padding) {
            Err(why) => Expect::Invalid(why),
            Ok(_) if sbias.as_ref().is_some_and(|b| b.as_slice() != [sw[0]]) => {
                Expect::Invalid("bias shape")
            }
            Ok((shape, cols, work)) => {
                // The output, then one column matrix per worker (up to two here).
                let mut buffers = vec![shape.clone()];
                if product(shape.iter().copied()) > 0 {
                    buffers.extend([cols.clone(), cols]);
                }
                Expect::Valid {
                    shape,
                    buffers,
                    work,
                }
            }
        };
        let reference = match (&expect, self.naive(a), self.naive(w)) {
            (Expect::Valid { shape, work, .. }, Some(x), Some(wt)) if small_work(shape, *work) => {
                match bias.map(|b| self.naive(b).cloned()) {
                    Some(None) => None,
                    b => Some(conv_reference(
                        x,
                        wt,
                        b.flatten().as_ref(),
                        shape,
                        stride,
                        padding,
                    )),
                }
            }
            _ => None,
        };
        let (x, wv) = (self.var(a).clone(), self.var(w).clone());
        let bv = bias.map(|b| self.var(b).clone());
        let terms = sw.get(1..).map_or(1, |k| k.iter().product::<usize>()) + 1;
        self.check(
            &label,
            report,
            expect,
            || x.try_conv2d(&wv, bv.as_ref(), stride, padding),
            reference,
            terms,
        );
    }

    /// The two hand-written-backward forms: `input_grad` (`extra` = input H, W) or
    /// `weight_grad` (`extra` = kernel), with `a` the output gradient.
    #[allow(clippy::too_many_arguments)]
    fn conv_adjoint(
        &mut self,
        report: &mut Report,
        step: usize,
        g: usize,
        other: usize,
        extra: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        input_grad: bool,
    ) {
        let (sg, so) = (
            self.var(g).shape().to_vec(),
            self.var(other).shape().to_vec(),
        );
        let name = if input_grad {
            "conv2d_input_grad"
        } else {
            "conv2d_weight_grad"
        };
        let label = format!(
            "step {step}: {name} of {sg:?} with {so:?}, {extra:?}, stride {stride:?}, padding {padding:?}"
        );
        let rule = || -> Result<(Vec<usize>, Vec<usize>, u128), &'static str> {
            if sg.len() != 4 || so.len() != 4 {
                return Err("rank");
            }
            let (x, w) = if input_grad {
                (vec![sg[0], so[1], extra.0, extra.1], so.clone())
            } else {
                (so.clone(), vec![sg[1], so[1], extra.0, extra.1])
            };
            let (out, cols, work) = conv_rule::<T>(&x, &w, stride, padding)?;
            if out != sg {
                return Err("gradient shape");
            }
            Ok((if input_grad { x } else { w }, cols, work))
        };
        let expect = match rule() {
            Err(why) => Expect::Invalid(why),
            Ok((shape, cols, work)) => {
                let empty = product(shape.iter().copied()) == 0;
                // The input gradient, or one partial weight gradient per worker (two
                // here), then a column matrix per worker.
                let mut buffers = if input_grad {
                    vec![shape.clone()]
                } else {
                    vec![vec![2, shape[0], shape[1] * shape[2] * shape[3]]]
                };
                if !empty {
                    buffers.extend([cols.clone(), cols]);
                }
                Expect::Valid {
                    shape,
                    buffers,
                    work,
                }
            }
        };
        let (gt, ot) = (self.var(g).value().clone(), self.var(other).value().clone());
        let tape = self.tape;
        let call = move || {
            let r = if input_grad {
                gt.try_conv2d_input_grad(&ot, extra, stride, padding)
            } else {
                gt.try_conv2d_weight_grad(&ot, extra, stride, padding)
            };
            r.map(|t| tape.constant(t))
        };
        // Values: the adjoint identities are tested in the crate; here shapes and errors.
        self.check(&label, report, expect, call, None, 1);
    }

    #[allow(clippy::too_many_arguments)]
    fn pool(
        &mut self,
        report: &mut Report,
        step: usize,
        a: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        max: bool,
    ) {
        let sx = self.var(a).shape().to_vec();
        let name = if max { "max_pool2d" } else { "avg_pool2d" };
        let label = format!(
            "step {step}: {name} of {sx:?}, kernel {kernel:?}, stride {stride:?}, padding {padding:?}"
        );
        let rule = || -> Result<Expect, &'static str> {
            if sx.len() != 4 {
                return Err("rank");
            }
            if sx[1] == 0 || sx[2] == 0 || sx[3] == 0 {
                return Err("empty input");
            }
            if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
                return Err("padding above half the kernel");
            }
            if stride.0 == 0 || stride.1 == 0 || kernel.0 == 0 || kernel.1 == 0 {
                return Err("zero stride or kernel");
            }
            let oh = window(sx[2], kernel.0, stride.0, padding.0)?;
            let ow = window(sx[3], kernel.1, stride.1, padding.1)?;
            let shape = vec![sx[0], sx[1], oh, ow];
            if !addressable::<T>(&shape) {
                return Err("output not addressable");
            }
            let out = product(shape.iter().copied());
            if max {
                let window = product([kernel.0.min(sx[2]), kernel.1.min(sx[3])]);
                let buffers = vec![shape.clone(), shape.clone()]; // values, arg-max
                return Ok(Expect::Valid {
                    buffers,
                    work: out.saturating_mul(window),
                    shape,
                });
            }
            // Average pooling is a one-channel convolution by a kh × kw kernel.
            let one = [sx[0].saturating_mul(sx[1]), 1, oh, ow];
            let cols = vec![kernel.0.saturating_mul(kernel.1), oh.saturating_mul(ow)];
            let kernel_shape = vec![1, 1, kernel.0, kernel.1];
            if !addressable::<T>(&kernel_shape)
                || !addressable::<T>(&cols)
                || !addressable::<T>(&one)
            {
                return Err("kernel or column matrix not addressable");
            }
            let work = out.saturating_mul(product([kernel.0, kernel.1]));
            // The kernel, the output, a column matrix per worker.
            let mut buffers = vec![kernel_shape, shape.clone()];
            if out > 0 {
                buffers.extend([cols.clone(), cols]);
            }
            Ok(Expect::Valid {
                shape,
                buffers,
                work,
            })
        };
        let expect = rule().unwrap_or_else(Expect::Invalid);
        let reference = match (&expect, self.naive(a)) {
            (Expect::Valid { shape, work, .. }, Some(x)) if small_work(shape, *work) => {
                Some(Naive::from_fn(shape, |i| {
                    let mut acc = if max { T::neg_infinity() } else { T::zero() };
                    let mut terms = Vec::new();
                    for p in 0..kernel.0 {
                        for q in 0..kernel.1 {
                            let r = (i[2] * stride.0 + p) as i128 - padding.0 as i128;
                            let c = (i[3] * stride.1 + q) as i128 - padding.1 as i128;
                            let inside =
                                r >= 0 && c >= 0 && (r as usize) < sx[2] && (c as usize) < sx[3];
                            if inside {
                                let v = x.at(&[i[0], i[1], r as usize, c as usize]);
                                if max {
                                    acc = nan_max(acc, v)
                                } else {
                                    terms.push(v)
                                }
                            }
                        }
                    }
                    if max {
                        acc
                    } else {
                        pairwise(&terms) / T::of(kernel.0 as f64 * kernel.1 as f64)
                    }
                }))
            }
            _ => None,
        };
        let xv = self.var(a).clone();
        let terms = kernel.0.saturating_mul(kernel.1).min(1 << 20);
        let call = || {
            if max {
                xv.try_max_pool2d(kernel, stride, padding)
            } else {
                xv.try_avg_pool2d(kernel, stride, padding)
            }
        };
        self.check(&label, report, expect, call, reference, terms);
    }

    /// Backward from one of the values: every tracked input gets a gradient of its shape
    /// (or, in anomaly mode, backward may report an anomaly instead).
    fn backward(&mut self, input: &mut Bytes<'_>, report: &mut Report) {
        if self.values.is_empty() {
            return;
        }
        let k = self.pick(input);
        let (y, _) = &self.values[k];
        let loss = y.sum();
        let second_order = input.byte().is_multiple_of(8);
        report.backward += 1;
        match loss.try_backward() {
            Ok(grads) => {
                for leaf in &self.leaves {
                    let g = grads.wrt(leaf);
                    assert_eq!(
                        g.shape(),
                        leaf.shape(),
                        "backward: the gradient of a leaf has its shape"
                    );
                }
            }
            Err(e @ Error::Anomaly { .. }) => {
                assert!(
                    self.tape.detects_anomalies(),
                    "an anomaly without anomaly mode: {e}"
                );
                return;
            }
            Err(e) => panic!("backward from value {k} of shape {:?}: {e}", y.shape()),
        }
        if second_order && loss.is_tracked() {
            let grads = loss.try_backward_create_graph_with(Tensor::scalar(T::one()));
            if let Ok(grads) = grads
                && let Some(leaf) = self.leaves.first()
            {
                let g = grads.wrt(leaf);
                assert_eq!(g.shape(), leaf.shape(), "recorded backward");
                let _ = g.sum().try_backward();
            }
        }
    }
}

/// `c / x`, through a broadcast division by a 0-d constant.
fn unary_rdiv<'t, T: Element>(c: T, x: &Var<'t, T>) -> Var<'t, T> {
    let c = x.tape().constant(Tensor::scalar(c));
    c.try_div(x)
        .expect("a 0-d value broadcasts against any shape")
}

/// `c − x`, through a broadcast subtraction from a 0-d constant.
fn unary_rsub<'t, T: Element>(c: T, x: &Var<'t, T>) -> Var<'t, T> {
    let c = x.tape().constant(Tensor::scalar(c));
    c.try_sub(x)
        .expect("a 0-d value broadcasts against any shape")
}

/// The shape rule of a convolution (PyTorch's, with wengert's choices documented in
/// docs/ops.md): the output shape, one image's column matrix, and the work.
fn conv_rule<T>(
    x: &[usize],
    w: &[usize],
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<(Vec<usize>, Vec<usize>, u128), &'static str> {
    if x.len() != 4 || w.len() != 4 {
        return Err("rank");
    }
    if x[1] != w[1] {
        return Err("channels differ");
    }
    if w[0] == 0 {
        return Err("no output channels");
    }
    if x[2] == 0 || x[3] == 0 {
        return Err("no rows or columns");
    }
    if stride.0 == 0 || stride.1 == 0 || w[2] == 0 || w[3] == 0 {
        return Err("zero stride or kernel");
    }
    let oh = window(x[2], w[2], stride.0, padding.0)?;
    let ow = window(x[3], w[3], stride.1, padding.1)?;
    let out = vec![x[0], w[0], oh, ow];
    let cols_rows = product([x[1], w[2], w[3]]);
    let positions = product([oh, ow]);
    let cols = vec![
        cols_rows.min(usize::MAX as u128) as usize,
        positions.min(usize::MAX as u128) as usize,
    ];
    if !addressable::<T>(x)
        || !addressable::<T>(w)
        || !addressable::<T>(&out)
        || cols_rows > usize::MAX as u128
        || positions > usize::MAX as u128
        || !addressable::<T>(&cols)
    {
        return Err("a buffer is not addressable");
    }
    let work = product([x[0], w[0]])
        .saturating_mul(cols_rows)
        .saturating_mul(positions);
    Ok((out, cols, work))
}

fn conv_reference<T: Element>(
    x: &Naive<T>,
    w: &Naive<T>,
    b: Option<&Naive<T>>,
    shape: &[usize],
    stride: (usize, usize),
    padding: (usize, usize),
) -> Naive<T> {
    let (c, kh, kw) = (w.shape[1], w.shape[2], w.shape[3]);
    let (h, wd) = (x.shape[2], x.shape[3]);
    Naive::from_fn(shape, |i| {
        let mut terms = Vec::new();
        for ci in 0..c {
            for p in 0..kh {
                for q in 0..kw {
                    let r = (i[2] * stride.0 + p) as i128 - padding.0 as i128;
                    let s = (i[3] * stride.1 + q) as i128 - padding.1 as i128;
                    // Zero padding is multiplied like any input (∞ · 0 is NaN, as in PyTorch).
                    let inside = r >= 0 && s >= 0 && (r as usize) < h && (s as usize) < wd;
                    let v = if inside {
                        x.at(&[i[0], ci, r as usize, s as usize])
                    } else {
                        T::zero()
                    };
                    terms.push(w.at(&[i[1], ci, p, q]) * v);
                }
            }
        }
        pairwise(&terms) + b.map_or(T::zero(), |b| b.data[i[1]])
    })
}

/// A sum, pairwise (what the library's full sums do; other sums compare with a tolerance).
fn pairwise<T: Element>(x: &[T]) -> T {
    if x.len() <= 128 {
        return x.iter().fold(T::zero(), |s, &v| s + v);
    }
    let (a, b) = x.split_at(x.len() / 2);
    pairwise(a) + pairwise(b)
}

/// The error of a call that must fail: its message renders and names a line.
fn expect_error(label: &str, r: Result<&[usize], &Error>, report: &mut Report) {
    match r {
        Ok(shape) => panic!("{label}: expected an error, got a value of shape {shape:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(" (at ") || matches!(e, Error::Anomaly { .. }),
                "{label}: {msg}"
            );
            report.errors += 1;
        }
    }
}

/// Element by element, NaN equal to NaN, ±∞ equal to itself, finite values within a
/// tolerance that grows with the number of terms summed.
fn compare<T: Element>(label: &str, got: &Tensor<T>, want: &Naive<T>, terms: usize) {
    let eps = if size_of::<T>() == 4 { 1e-5 } else { 1e-12 } * (terms.max(1) as f64).sqrt() * 4.0;
    for (j, (&g, &w)) in got.data().iter().zip(&want.data).enumerate() {
        let (g64, w64) = (
            g.to_f64().unwrap_or(f64::NAN),
            w.to_f64().unwrap_or(f64::NAN),
        );
        let same = (g64.is_nan() && w64.is_nan())
            || g64 == w64
            || (g64.is_finite()
                && w64.is_finite()
                && (g64 - w64).abs() <= eps * (1.0 + w64.abs()) * 8.0);
        assert!(
            same,
            "{label}: element {j} is {g64}, the reference says {w64}"
        );
    }
}
