//! The buffer cache's process-wide limit (its own test binary, one test: the limit is global, and
//! the unit tests in the library rely on the default).

use autograd::{Tape, Tensor, buffer_pool};

/// A second tape of the same length takes the first one's lists (nodes, input ids,
/// adjoints) instead of allocating them again.
fn tapes_reuse_the_lists_of_the_last_tape() {
    let chain = || {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::scalar(0.5));
        let mut h = x.clone();
        for _ in 0..2000 {
            h = &(&h * 0.999) + 0.001;
        }
        h.backward().wrt(&x).item()
    };
    let first = chain();
    let kept = buffer_pool::stats();
    assert!(
        kept.cached_buffers >= 3,
        "the lists were not kept: {kept:?}"
    );
    let second = chain();
    let after = buffer_pool::stats();
    assert_eq!(first, second);
    assert!(after.hits >= kept.hits + 3, "{kept:?} then {after:?}");
}

#[test]
fn steps_reuse_buffers_and_the_limit_switches_caching_off() {
    tapes_reuse_the_lists_of_the_last_tape();
    training_steps_reuse_their_buffers();
    buffer_pool::clear();
    assert_eq!(buffer_pool::limit(), buffer_pool::DEFAULT_LIMIT);
    let a = Tensor::<f64>::ones(&[100, 100]);

    // Cached: a freed 80 KB result serves the next one.
    drop(a.map(f64::exp));
    assert_eq!(buffer_pool::stats().cached_bytes, 80_000);
    let hits = buffer_pool::stats().hits;
    let b = a.map(f64::exp);
    assert_eq!(buffer_pool::stats().hits, hits + 1);
    assert_eq!(b.get(&[3, 4]), 1f64.exp());
    drop(b);

    // Inside `uncached`: the cache is emptied and nothing is kept.
    let kept = buffer_pool::uncached(|| {
        assert_eq!(buffer_pool::limit(), 0);
        drop(a.map(f64::exp));
        buffer_pool::stats().cached_bytes
    });
    assert_eq!(kept, 0);
    assert_eq!(buffer_pool::limit(), buffer_pool::DEFAULT_LIMIT);

    // A limit smaller than a buffer keeps it out.
    buffer_pool::set_limit(50_000);
    drop(a.map(f64::exp));
    assert_eq!(buffer_pool::stats().cached_bytes, 0);
    buffer_pool::set_limit(buffer_pool::DEFAULT_LIMIT);
}

/// Called from the one test below: the limit is process-wide, so nothing here may run
/// while another test changes it.
fn training_steps_reuse_their_buffers() {
    // After one step, a second identical step takes every large buffer from the cache.
    let x = Tensor::<f32>::from_fn(&[64, 128], |i| (i[0] as f32 - i[1] as f32).sin());
    let w = Tensor::<f32>::from_fn(&[128, 128], |i| ((i[0] * 128 + i[1]) as f32 * 0.37).sin());
    let step = || {
        let tape = Tape::new();
        let (xv, wv) = (tape.constant(x.clone()), tape.var(w.clone()));
        let h = xv.matmul(&wv.transpose(0, 1)).relu();
        let loss = (&h * &h).mean();
        loss.backward_leaves()
            .wrt(&wv)
            .sum_axes(&[0, 1], false)
            .item()
    };
    let first = step();
    let misses = buffer_pool::stats().misses;
    let second = step();
    assert_eq!(first, second);
    assert_eq!(
        buffer_pool::stats().misses,
        misses,
        "the second step allocated"
    );
}
