"""Peak memory of map-based scores: does it grow with N x (feature-map size)?

Each measurement runs in a fresh subprocess (``--child METHOD N``), so the
high-water mark ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak resident
set size, KiB on Linux) belongs to that measurement alone. RSS is used rather
than ``tracemalloc`` because tracemalloc only sees allocations made through
Python's allocator and NumPy; torch tensors (the feature maps, the batches)
are allocated by torch's own CPU allocator and are invisible to it.

In the child: build a CIFAR ResNet-18 (``--width``, default 16 to keep the
run short on 2 shared cores), random float32 images ``(N, 3, 32, 32)``, run
one warm-up forward pass on 8 images (loads oneDNN kernels, thread pools),
read ``ru_maxrss`` (``baseline``), run the method (fit + score on the N
images), read ``ru_maxrss`` again (``peak``). ``delta = peak - baseline`` is
what the method added on top of the model and the input.

Methods:

* ``featurenorm``: ``make_pipeline(BlockFeatureExtractor(net, "layer1",
  reduce="norm"), FeatureNorm())`` (layer1 has the largest maps);
* ``nap``: ``make_pipeline(BlockFeatureExtractor(net, "layer4",
  reduce=["max", "avg"]), NAP())``;
* ``blockselection``: ``BlockSelection(net, random_state=0)`` (8 candidate
  BasicBlocks, fit on images + jigsaw puzzles, then score);
* ``maps_held`` (control): ``BlockFeatureExtractor(net, "layer1",
  reduce=None)`` then ``FeatureNorm`` on the full 4-D maps, i.e. what holding
  every map costs.

Usage::

    python perf/bench_memory.py [--n 1000 8000] [--width 16]
        [--threads 1] [--methods featurenorm nap blockselection maps_held]

Peak memory does not depend on the thread count beyond a few MiB of
per-thread buffers; one thread keeps the run from fighting other jobs.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

MIB = 2**20


def _maxrss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(method, n, width, threads):
    import numpy as np
    import torch
    from sklearn.pipeline import make_pipeline

    from sklearn_ood import NAP, BlockFeatureExtractor, BlockSelection, FeatureNorm
    from sklearn_ood.models import resnet18

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = resnet18(num_classes=10, width=width).eval()
    X = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)).numpy()
    with torch.inference_mode():
        net(torch.from_numpy(X[:8]))
    baseline = _maxrss_bytes()
    t0 = time.perf_counter()
    if method == "featurenorm":
        pipe = make_pipeline(BlockFeatureExtractor(net, "layer1", reduce="norm"), FeatureNorm())
        scores = pipe.fit(X).score_samples(X)
    elif method == "nap":
        pipe = make_pipeline(
            BlockFeatureExtractor(net, "layer4", reduce=["max", "avg"]), NAP()
        )
        scores = pipe.fit(X).score_samples(X)
    elif method == "blockselection":
        scores = BlockSelection(net, random_state=0).fit(X).score_samples(X)
    elif method == "maps_held":
        maps = BlockFeatureExtractor(net, "layer1", reduce=None).fit(X).transform(X)
        scores = FeatureNorm().fit(maps).score_samples(maps)
    else:
        raise ValueError(method)
    elapsed = time.perf_counter() - t0
    peak = _maxrss_bytes()
    assert np.isfinite(scores).all() and scores.shape == (n,)
    # Map sizes per image (float32) at this width for 32x32 input.
    per_image = {
        "layer1": 4 * width * 32 * 32,
        "layer4": 4 * 8 * width * 4 * 4,
        "all_blocks": 4 * 2 * (width * 32 * 32 + 2 * width * 16 * 16
                               + 4 * width * 8 * 8 + 8 * width * 4 * 4),
    }
    held = {"featurenorm": n * per_image["layer1"], "maps_held": n * per_image["layer1"],
            "nap": n * per_image["layer4"],
            # images + puzzles, every candidate block
            "blockselection": 2 * n * per_image["all_blocks"]}[method]
    print(json.dumps({
        "method": method, "n": n, "width": width, "baseline_mib": baseline / MIB,
        "peak_mib": peak / MIB, "delta_mib": (peak - baseline) / MIB,
        "input_mib": X.nbytes / MIB, "all_maps_mib": held / MIB, "seconds": elapsed,
    }))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", nargs="+",
                        default=["featurenorm", "nap", "blockselection", "maps_held"])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"))
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.width, args.threads)
        return
    print(f"{'method':15s} {'N':>6s} {'baseline':>9s} {'peak':>9s} {'delta':>9s} "
          f"{'input':>8s} {'all maps':>9s} {'time':>7s}   (MiB, s)")
    for method in args.methods:
        for n in args.n:
            out = subprocess.run(
                [sys.executable, __file__, "--child", method, str(n), "--width",
                 str(args.width), "--threads", str(args.threads)],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{method:15s} {n:6d} {r['baseline_mib']:9.1f} {r['peak_mib']:9.1f} "
                  f"{r['delta_mib']:9.1f} {r['input_mib']:8.1f} {r['all_maps_mib']:9.1f} "
                  f"{r['seconds']:7.1f}", flush=True)


if __name__ == "__main__":
    main()
