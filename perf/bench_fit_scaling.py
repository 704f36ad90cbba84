"""Fit time and peak extra memory of every array detector at N = 10k, 100k, 1M rows.

Issue "ImageNet-size data on one machine": is ``fit`` linear in N, and is its
extra memory flat in N beyond the detector's own statistics?

Each (detector, D, N) runs in a fresh subprocess (``--child``), one at a time
(a 1,000,000 x 512 float32 input is 2 GiB). In the child:

1. set the BLAS / OpenMP / torch thread count (``--threads``, default 1: one
   thread is far less sensitive to other jobs on a shared machine) before
   importing NumPy;
2. generate the features, seeded, by chunks of 16,384 rows straight into one
   float32 ``(N, D)`` array: post-ReLU-like, ``relu(mu[y] + noise)`` with a
   random class mean ``mu`` (K classes) and standard-normal noise, so about
   half of the entries are exact zeros; balanced random labels ``y`` in
   ``0 .. K-1`` (int64) and a random head ``(coef (K, D), intercept (K,))``;
3. build the detector as its tags declare, with its default hyper-parameters
   (``make_case`` of ``tests/_instances.py``, the tests' instance generator,
   over the registry's detectors that take arrays): the head and the labels
   where it takes them (every sixth row labelled OOD, -1, for a detector that
   fits on OOD rows: MultiBlockMahalanobis), ``random_state=0``, two blocks
   of ``D / 2`` columns (MultiBlockMahalanobis), rows read as flattened maps
   of 2 channels (Gram's ``block_shapes``); a detector of 4-D maps only
   (RankFeat) gets the same array viewed as ``(N, D / 16, 4, 4)`` maps (no
   copy);
4. reset the kernel's RSS high-water mark (``echo 5 > /proc/self/clear_refs``,
   Linux >= 4.0), read ``VmRSS`` (``baseline``: Python, libraries, the input,
   the labels), run ``fit`` once, read ``VmHWM`` (``peak``);
   ``extra = peak - baseline`` is what ``fit`` added, counting every allocator
   (NumPy, BLAS workspaces, SciPy/LAPACK, torch), which ``tracemalloc`` would
   not. If ``clear_refs`` is not writable the child falls back to
   ``ru_maxrss`` and says so (then the generation chunk, 32 MiB at D = 512,
   is a floor under the peak).

Wall time (``time.perf_counter``) and CPU time (``time.process_time``, all
threads of the process) of ``fit`` are both printed; on a loaded machine the
CPU time is the more stable of the two.

Time budget: a detector's next (larger) N is skipped when the linear
extrapolation of its last fit time, ``t(N_prev) * N / N_prev``, exceeds
``--budget`` seconds (default 120), and a child is killed after ``--timeout``
seconds (default 240); both are printed as ``skipped`` / ``timeout`` rows.

Memory guard: the next N is also skipped when the linear extrapolation of
the extra memory exceeds ``--max-extra-gib`` (default 14 GiB; the machine
has 24 GiB, shared). ``--stop-at HH:MM`` marks every cell not started by
then as skipped (a session deadline), so the table says what was not run.

Every result is appended as one JSON line to ``--out`` as soon as it is
measured, so a partial run still gives a table; ``--report FILE`` prints the
table (time per N, ratio t(1M)/t(100k), extra memory per N in MiB and in
units of the input size) from such a file. A rerun with the same ``--out`` resumes: the cells already
in the file are kept (and feed the budget rule), cells skipped for session
time are run again; ``--detectors`` also sets the order.

Usage::

    python perf/bench_fit_scaling.py [--n 10000 100000 1000000] [--d 512]
        [--k 10] [--threads 1] [--budget 120] [--timeout 240]
        [--max-extra-gib 14] [--stop-at HH:MM] [--detectors ASH DICE ...] [--out perf/fit_scaling.jsonl]
    python perf/bench_fit_scaling.py --report perf/fit_scaling.jsonl
"""

import argparse
import json
import os
import subprocess
import sys
import time

from _memory import status_kib

MIB = 2**20
CHUNK = 16384

# The detectors and how each is built come from the registry, through the tests' instance
# generator (tests/_instances.py), with the default hyper-parameters.
TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests")


def registered():
    """``name -> class`` of every registered detector that takes arrays."""
    sys.path.insert(0, TESTS)
    from _instances import array_detectors

    return dict(array_detectors())


def make_data(n, d, k, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    coef = (rng.standard_normal((k, d)) / np.sqrt(d)).astype(np.float32)
    intercept = (0.1 * rng.standard_normal(k)).astype(np.float32)
    mu = (0.5 * rng.standard_normal((k, d))).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % k
    rng.shuffle(y)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, CHUNK):
        block = X[s : s + CHUNK]
        rng.standard_normal(out=block, dtype=np.float32)
        block += mu[y[s : s + CHUNK]]
        np.maximum(block, 0.0, out=block)
    return X, y, (coef, intercept)


def child(name, n, d, k, threads, seed):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, TESTS)
    from _instances import make_case

    X, y, head = make_data(n, d, k, seed)
    # the same array viewed as maps for a detector of maps only (no copy)
    case = make_case(registered()[name], X, X.reshape(n, d // 16, 4, 4), y, head, small=False)
    X, y, est = case.X, case.y, case.make()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        measure = "VmHWM after clear_refs"
    except OSError:
        measure = "ru_maxrss (clear_refs not writable)"
    if measure.startswith("ru_maxrss"):
        import resource

        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    else:
        baseline = status_kib("VmRSS") * 1024
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(X, y)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if measure.startswith("ru_maxrss"):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    else:
        peak = status_kib("VmHWM") * 1024
    assert np.isfinite(est.offset_)
    print(json.dumps({
        "detector": name, "n": n, "d": d, "k": k, "threads": threads, "status": "ok",
        "wall_s": wall, "cpu_s": cpu, "baseline_mib": baseline / MIB,
        "peak_mib": peak / MIB, "extra_mib": (peak - baseline) / MIB,
        "input_mib": X.nbytes / MIB, "measure": measure,
    }))


def run(args):
    names = args.detectors or list(registered())
    stop_at = None
    if args.stop_at:
        hh, mm = map(int, args.stop_at.split(":"))
        now = time.localtime()
        stop_at = time.mktime(now[:3] + (hh, mm, 0) + now[6:])
    out = open(args.out, "a")
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    # name -> (n, wall, extra) of the last successful fit at this D (None: failed or
    # skipped); a rerun with the same --out resumes: cells already there are kept.
    last, done = {}, set()
    if os.path.exists(args.out):
        for line in open(args.out):
            r = json.loads(line)
            if r["d"] == args.d and r["k"] == args.k and r["threads"] == args.threads:
                done.add((r["detector"], r["n"]))
                if r["status"] == "ok":
                    last[r["detector"]] = (r["n"], r["wall_s"], r["extra_mib"])
                elif r["status"] != "skipped" or "session time" not in r["reason"]:
                    last[r["detector"]] = None
                else:
                    done.discard((r["detector"], r["n"]))
    for n in sorted(args.n):  # every detector at one N before the next N
        for name in names:
            if (name, n) in done:
                continue
            rec = {"detector": name, "n": n, "d": args.d, "k": args.k,
                   "threads": args.threads}
            prev = last.get(name)
            if name in last and prev is None:
                rec.update(status="skipped", reason="a smaller N failed or was skipped")
            elif prev is not None and prev[1] * n / prev[0] > args.budget:
                rec.update(status="skipped", reason=(
                    f"t({prev[0]})={prev[1]:.1f}s extrapolates to "
                    f"{prev[1] * n / prev[0]:.0f}s > budget {args.budget:.0f}s"))
            elif prev is not None and prev[2] * n / prev[0] > args.max_extra_gib * 1024:
                rec.update(status="skipped", reason=(
                    f"extra {prev[2]:.0f} MiB at N={prev[0]} extrapolates to "
                    f"{prev[2] * n / prev[0] / 1024:.1f} GiB > {args.max_extra_gib:.0f} GiB"))
            elif stop_at is not None and time.time() > stop_at:
                rec.update(status="skipped", reason=f"session time (--stop-at {args.stop_at})")
            else:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", name, str(n),
                       "--d", str(args.d), "--k", str(args.k),
                       "--threads", str(args.threads), "--seed", str(args.seed)]
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True,
                                       timeout=args.timeout)
                    if p.returncode == 0:
                        rec = json.loads(p.stdout.strip().splitlines()[-1])
                    else:
                        err = (p.stderr.strip().splitlines() or ["?"])[-1]
                        rec.update(status="error", reason=f"rc={p.returncode}: {err}")
                except subprocess.TimeoutExpired:
                    rec.update(status="timeout", reason=f"killed after {args.timeout:.0f}s")
            rec["load"] = os.getloadavg()[0]
            last[name] = (n, rec["wall_s"], rec["extra_mib"]) if rec["status"] == "ok" else None
            out.write(json.dumps(rec) + "\n")
            out.flush()
            if rec["status"] == "ok":
                print(f"{name:22s} D={args.d:5d} N={n:8d} wall {rec['wall_s']:8.2f}s "
                      f"cpu {rec['cpu_s']:8.2f}s extra {rec['extra_mib']:9.1f} MiB "
                      f"({rec['extra_mib'] / rec['input_mib']:6.2f}x input) "
                      f"load {rec['load']:.1f}", flush=True)
            else:
                print(f"{name:22s} D={args.d:5d} N={n:8d} {rec['status']}: {rec['reason']}",
                      flush=True)


# Report flags, from the 100k -> 1M step (at N <= 10,000 the offset sample is
# every row, so the 10k cell includes scoring all of them). Time: CPU-time
# ratio above 12.5 (linear = 10; CPU time, because wall time on a shared
# machine varies by more than that). Memory: the extra memory grew by more
# than 10 % of the added input (0.1 x 900,000 rows x D x 4 bytes).
SUPERLINEAR = 12.5
GROWN = 0.1


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def report(path):
    recs = {}
    for line in open(path):
        r = json.loads(line)
        recs[(r["detector"], r["d"], r["n"])] = r  # the last run of a cell wins
    for d in sorted({key[1] for key in recs}):
        ns = sorted({key[2] for key in recs if key[1] == d})
        names = sorted({key[0] for key in recs if key[1] == d}, key=str.lower)
        head = ["detector"] + [f"fit s N={n:,}" for n in ns]
        both = 100000 in ns and 1000000 in ns
        if both:
            head.append("t(1M)/t(100k)")
        head += [f"extra MiB N={n:,}" for n in ns] + [f"x input N={n:,}" for n in ns]
        if both:
            head.append("flags (100k -> 1M)")
        print(f"\nD = {d}\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for name in names:
            cells = [recs.get((name, d, n)) for n in ns]
            ok = [c if c and c["status"] == "ok" else None for c in cells]

            def t(c, o):
                if o:
                    return f"{o['wall_s']:.2f} (cpu {o['cpu_s']:.2f})"
                return "-" if c is None else c["status"]

            row = [name] + [t(c, o) for c, o in zip(cells, ok)]
            if 100000 in ns and 1000000 in ns:
                a, b = ok[ns.index(100000)], ok[ns.index(1000000)]
                row.append(f"{b['wall_s'] / a['wall_s']:.1f} (cpu {b['cpu_s'] / a['cpu_s']:.1f})"
                           if a and b else "-")
            row += [_fmt(o and o["extra_mib"], ".0f") for o in ok]
            row += [_fmt(o and o["extra_mib"] / o["input_mib"], ".2f") for o in ok]
            if both:
                a, b = ok[ns.index(100000)], ok[ns.index(1000000)]
                flags = []
                if a and b:
                    if b["cpu_s"] / a["cpu_s"] > SUPERLINEAR:
                        flags.append("time superlinear")
                    grown = b["extra_mib"] - a["extra_mib"]
                    if grown > GROWN * (b["input_mib"] - a["input_mib"]):
                        flags.append(f"memory +{grown:.0f} MiB "
                                     f"({grown / (b['input_mib'] - a['input_mib']):.2f}x "
                                     "added input)")
                row.append(", ".join(flags) if flags else ("-" if not (a and b) else "ok"))
            print("| " + " | ".join(row) + " |")
        notes = [r for key, r in recs.items() if key[1] == d and r["status"] != "ok"]
        for r in sorted(notes, key=lambda r: (r["detector"].lower(), r["n"])):
            print(f"- {r['detector']} N={r['n']:,}: {r['status']}: {r['reason']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10000, 100000, 1000000])
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--max-extra-gib", type=float, default=14.0)
    parser.add_argument("--stop-at", metavar="HH:MM",
                        help="skip (and say so) every cell not started by this local time")
    parser.add_argument("--detectors", nargs="+")
    parser.add_argument("--out", default="perf/fit_scaling.jsonl")
    parser.add_argument("--report", metavar="FILE")
    parser.add_argument("--child", nargs=2, metavar=("DETECTOR", "N"))
    args = parser.parse_args(argv)
    if args.report:
        report(args.report)
    elif args.child:
        child(args.child[0], int(args.child[1]), args.d, args.k, args.threads, args.seed)
    else:
        run(args)


if __name__ == "__main__":
    main()
