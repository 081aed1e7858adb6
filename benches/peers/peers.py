#!/usr/bin/env python3
"""resmlp-step (WORKLOADS.md) in wengert, JAX (jit) and PyTorch (eager), in turns.

Every implementation starts from WORKLOADS.md's closed-form initialisation, computes the
same loss (mean squared error) and takes the same plain SGD step (lr 0.01). Each
measurement runs in its own process, pinned to one CPU for the 1-thread cells; the
implementations take turns (in a rotating order) within each cell, so that a change in the
machine's load hits all of them alike. The table gives, per cell, the median over the
rounds of each run's median step time, ± half the range of those medians (relative), and
each time as a ratio to the README's wengert loop (above 1: slower than wengert).

    python3 -m venv /tmp/venv-peers
    /tmp/venv-peers/bin/pip install jax numpy torch
    /tmp/venv-peers/bin/python benches/peers/peers.py --sizes S,M --rounds 3

See benches/peers/README.md. Not part of CI.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LR = 0.01
SIZES = {"S": (32, 64, 4), "M": (64, 256, 8), "L": (256, 1024, 8)}
# WORKLOADS.md: the initial loss (before the first update) of each size.
REFERENCE_LOSS = {"S": 0.7557864, "M": 0.7661943, "L": 0.7643823}
LOSS_TOLERANCE = 2e-6
# Steps per run: warm-up (the first gives the initial loss; JAX compiles there), timed.
STEPS = {"S": (20, 200), "M": (5, 40), "L": (2, 6)}
WENGERT = ["wengert-user", "wengert-fused", "wengert-manual"]
PEERS = ["jax", "torch"]
# wengert-manual is left out by default: its f32 loss is summed in sequence and drifts
# from the others' at L (0.7643414), which the initial-loss check reports.
DEFAULT_IMPLS = ["wengert-user", "wengert-fused", "jax", "torch"]


# ---------------------------------------------------------------------------------------
# The workload, as WORKLOADS.md gives it (computed in float64, stored as float32, like
# wengert's `workloads::ResMlp`).


def closed_form(size):
    import numpy as np

    b, d, n = SIZES[size]
    ij = np.arange(d * d, dtype=np.float64).reshape(d, d)
    i = np.arange(d, dtype=np.float64)
    rc = np.arange(b * d, dtype=np.float64).reshape(b, d)

    def weight(k, l):
        return (0.5 / np.sqrt(d) * np.sin(0.37 * ij + 1.3 * k + 0.7 * l)).astype(np.float32)

    def bias(k, l):
        return (0.1 * np.cos(0.11 * i + (k + l))).astype(np.float32)

    params = [(weight(k, 1), bias(k, 1), weight(k, 2), bias(k, 2)) for k in range(n)]
    x = np.sin(0.05 * rc).astype(np.float32)
    y = np.cos(0.03 * rc).astype(np.float32)
    return params, x, y


def timed(step, warmup, steps):
    """Runs `step` warmup times, then steps times timed; (first loss, times in ms)."""
    initial = step()
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return initial, times


def jax_worker(size, warmup, steps):
    import jax
    import jax.numpy as jnp

    params, x, y = closed_form(size)
    params = [tuple(jnp.asarray(a) for a in block) for block in params]
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss_fn(params, x, y):
        h = x
        for w1, b1, w2, b2 in params:
            a = jax.nn.relu(h @ w1.T + b1)
            h = jax.nn.relu(a @ w2.T + b2 + h)
        return jnp.mean((h - y) ** 2)

    def sgd_step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
        return params, loss

    sgd_step = jax.jit(sgd_step, donate_argnums=0)
    state = {"params": params}

    def step():
        state["params"], loss = sgd_step(state["params"], x, y)
        jax.block_until_ready((state["params"], loss))
        return float(loss)

    return jax.__version__, timed(step, warmup, steps)


def torch_worker(size, threads, warmup, steps):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    blocks, x, y = closed_form(size)
    params = [torch.tensor(a, requires_grad=True) for block in blocks for a in block]
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(params, lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        h = x
        for k in range(len(blocks)):
            w1, b1, w2, b2 = params[4 * k : 4 * k + 4]
            a = torch.relu(F.linear(h, w1, b1))
            h = torch.relu(F.linear(a, w2, b2) + h)
        loss = F.mse_loss(h, y)
        loss.backward()
        opt.step()
        return loss.item()

    return torch.__version__, timed(step, warmup, steps)


def worker(args):
    if args.impl == "jax":
        version, (initial, times) = jax_worker(args.size, args.warmup, args.steps)
    elif args.impl == "torch":
        version, (initial, times) = torch_worker(args.size, args.threads, args.warmup, args.steps)
    else:
        sys.exit(f"worker: unknown implementation {args.impl}")
    print(json.dumps({"impl": args.impl, "version": version, "size": args.size,
                      "threads": args.threads, "initial_loss": initial, "ms": times}))


# ---------------------------------------------------------------------------------------
# The driver.


def build_wengert():
    """Builds the wengert program (release, bench profile); its path."""
    command = ["cargo", "bench", "--features", "bench", "--bench", "peers_wengert",
               "--no-run", "--message-format=json"]
    print("building:", " ".join(command), file=sys.stderr, flush=True)
    out = subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.PIPE, text=True)
    for line in out.stdout.splitlines():
        message = json.loads(line)
        if (message.get("reason") == "compiler-artifact"
                and message["target"]["name"] == "peers_wengert" and message.get("executable")):
            return message["executable"]
    sys.exit("cargo did not report the peers_wengert executable")


def run_one(impl, size, threads, wengert_bin, cpus):
    warmup, steps = STEPS[size]
    env = dict(os.environ)
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"]:
        env[var] = str(threads)
    env["JAX_PLATFORMS"] = "cpu"
    flags = env.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["XLA_FLAGS"] = flags.strip()
    common = ["--size", size, "--threads", str(threads), "--warmup", str(warmup),
              "--steps", str(steps)]
    if impl.startswith("wengert-"):
        command = [wengert_bin, "--impl", impl.removeprefix("wengert-")] + common
    else:
        command = [sys.executable, __file__, "worker", "--impl", impl] + common
    pinned = set(cpus[:threads])
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, pinned))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["median"] = statistics.median(result["ms"])
    return result


def format_ms(ms):
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="one run of JAX or PyTorch (used by the driver)")
    w.add_argument("--impl", required=True)
    w.add_argument("--size", required=True, choices=SIZES)
    w.add_argument("--threads", type=int, required=True)
    w.add_argument("--warmup", type=int, required=True)
    w.add_argument("--steps", type=int, required=True)
    parser.add_argument("--sizes", default="S,M,L")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                        help="comma-separated, among " + ", ".join(WENGERT + PEERS))
    parser.add_argument("--wengert-bin", help="a built peers_wengert (skips cargo)")
    parser.add_argument("--json", help="also write every run's result to this file")
    args = parser.parse_args()
    if args.command == "worker":
        return worker(args)

    sizes = args.sizes.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    impls = args.impls.split(",")
    if "wengert-user" not in impls:
        sys.exit("--impls must include wengert-user (the ratios' reference)")
    cpus = sorted(os.sched_getaffinity(0))
    if max(thread_counts) > len(cpus):
        sys.exit(f"{max(thread_counts)} threads asked for, {len(cpus)} CPUs available")
    wengert_bin = args.wengert_bin or (build_wengert() if any(
        i.startswith("wengert-") for i in impls) else None)

    runs = []
    medians = {}
    for size in sizes:
        for threads in thread_counts:
            for r in range(args.rounds):
                order = impls[r % len(impls):] + impls[:r % len(impls)]
                for impl in order:
                    result = run_one(impl, size, threads, wengert_bin, cpus)
                    runs.append(result)
                    medians.setdefault((size, threads, impl), []).append(result["median"])
                    print(f"  {size} {threads}T round {r + 1} {impl:15} "
                          f"{format_ms(result['median'])} ms/step, initial loss "
                          f"{result['initial_loss']:.7f}", file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))

    versions = {r["impl"]: r.get("version") for r in runs if r.get("version")}
    print(f"\nresmlp-step f32, ms per step: median over {args.rounds} alternating rounds of "
          f"each run's median, ± half their range (relative); ratio = time / wengert-user's")
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {len(cpus)} CPUs; "
          + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print()
    print("| cell | " + " | ".join(impls) + " |")
    print("|---|" + "---|" * len(impls))
    for size in sizes:
        for threads in thread_counts:
            ref = statistics.median(medians[(size, threads, "wengert-user")])
            cells = []
            for impl in impls:
                ms = medians[(size, threads, impl)]
                mid = statistics.median(ms)
                spread = (max(ms) - min(ms)) / mid
                cells.append(f"{format_ms(mid)} ms ±{spread * 50:.0f}% · {mid / ref:.2f}×")
            print(f"| {size} {threads}T | " + " | ".join(cells) + " |")

    print()
    bad = [r for r in runs if abs(r["initial_loss"] - REFERENCE_LOSS[r["size"]]) > LOSS_TOLERANCE]
    for size in sizes:
        losses = {r["impl"]: r["initial_loss"] for r in runs if r["size"] == size}
        print(f"initial loss {size} (WORKLOADS.md {REFERENCE_LOSS[size]}): "
              + ", ".join(f"{k} {v:.7f}" for k, v in losses.items()))
    if bad:
        for r in bad:
            print(f"MISMATCH: {r['impl']} {r['size']}: initial loss {r['initial_loss']}",
                  file=sys.stderr)
        sys.exit(1)
    print(f"every implementation's initial loss is WORKLOADS.md's within {LOSS_TOLERANCE}")


if __name__ == "__main__":
    main()
