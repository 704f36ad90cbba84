"""Score images or features on a Dask cluster; run searches under Dask's joblib backend.

Requires the ``dask`` extra (``pip install "sklearn-ood[dask]"``: ``dask[array]``
and ``distributed``). Dask is imported when a function of this module is
called, so ``import sklearn_ood`` works without it.

Scoring a dask array
--------------------
:func:`score_dask` sends a fitted detector or ``Pipeline`` (with its torch
model) to every worker ONCE (``client.scatter(..., broadcast=True)``) and
scores a dask array block by block: images ``(n_samples, channels, height,
width)`` or features ``(n_samples, n_features)``, chunked along the first axis
only. The result is a dask array whose block ``i`` holds the scores of the
input's block ``i``, so the blocks are assembled by index: a block recomputed
after a worker died (the scheduler reruns the task elsewhere) is neither lost
nor counted twice.

Threads
-------
A worker process scores one block at a time (the model is shared by the
worker's threads, and its forward hooks are registered per call, so two
concurrent calls would see each other's outputs); within the block, torch's
intra-op threads do the work. With ``torch_threads="auto"`` each worker sets
``torch.set_num_threads(cores // workers)``, where ``cores`` is the number of
cores the worker process may use and ``workers`` the number of workers on its
host, so that workers x torch threads <= cores. Start as many single-threaded
workers as you want processes per machine, e.g.
``LocalCluster(n_workers=2, threads_per_worker=1)`` on 2 cores.

Memory allocator
----------------
Dask's nanny starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``), which turns off glibc's adaptive
mmap threshold: every large torch tensor is then mmap-ed and page-faulted
afresh, and a ResNet forward pass was measured at 1.8x to 2.6x the CPU time
it takes in an ordinary process. Setting ``MALLOC_MMAP_THRESHOLD_`` too (32 MiB, glibc's
maximum) restores the ordinary speed; do it before starting the cluster::

    import dask
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_":
                     32 * 2**20})

Searches
--------
``GridSearchCV`` -- including the one inside
:func:`~sklearn_ood.tuning.tune_on_pseudo_ood` -- fits its candidates with
joblib; under ``joblib.parallel_backend("dask")`` (with a ``Client`` running)
they are fitted on the cluster and give the same ``cv_results_`` scores and
parameters as without, since the folds and the fits do not depend on where
they run::

    import joblib
    from distributed import Client

    client = Client(cluster)
    with joblib.parallel_backend("dask"):
        result = tune_on_pseudo_ood(extractor, detector, grid, X, n_jobs=-1)

The feature extraction of ``tune_on_pseudo_ood`` runs in the calling process;
only the detector fits are sent to the workers.
"""

import os
import threading
from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["score_dask"]

_METHODS = {"score_samples": np.float64, "decision_function": np.float64,
            "predict": np.int64}

# One block scored at a time per worker process (see "Threads" above).
_SCORING_LOCK = threading.Lock()


def _import_dask():
    try:
        import dask.array as da
        import distributed
    except ImportError as exc:
        raise ImportError(
            "sklearn_ood.distributed needs dask[array] and distributed; install them with "
            'pip install "sklearn-ood[dask]" (or pip install "dask[array]" distributed).'
        ) from exc
    return da, distributed


def _usable_cores():
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _check_dask_array(X, da):
    if not isinstance(X, da.Array):
        raise TypeError(
            "X must be a dask array chunked along its first axis; got "
            f"{type(X).__name__}. Wrap an array (or np.memmap, h5py, zarr dataset) with "
            "dask.array.from_array(X, chunks=(n, *X.shape[1:]))."
        )
    if X.ndim < 1 or X.size == 0:
        raise ValueError(f"X must hold at least one sample; got a dask array of shape {X.shape}.")
    if any(np.isnan(size) for chunks in X.chunks for size in chunks):
        raise ValueError(
            "X has unknown chunk sizes (NaN); call X.compute_chunk_sizes() first."
        )
    split = [axis for axis in range(1, X.ndim) if len(X.chunks[axis]) > 1]
    if split:
        raise ValueError(
            f"X must be chunked along its first axis (samples) only; it is also chunked "
            f"along axis {split} (chunks {X.chunks}). Rechunk with "
            f"X.rechunk({{{', '.join(f'{axis}: -1' for axis in split)}}})."
        )


def _torch_threads_spec(client, torch_threads):
    """``None`` (leave torch alone), an int, or ``{host: number of workers}`` ("auto")."""
    if torch_threads is None:
        return None
    if isinstance(torch_threads, Integral) and not isinstance(torch_threads, bool):
        if torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, 'auto' or None; got {torch_threads}.")
        return int(torch_threads)
    if torch_threads != "auto":
        raise ValueError(
            f"torch_threads must be 'auto', a positive int or None; got {torch_threads!r}."
        )
    from distributed.comm import get_address_host

    workers = {}
    for address in client.ncores():
        host = get_address_host(address)
        workers[host] = workers.get(host, 0) + 1
    return workers


def _score_block(estimator, block, method, dtype, threads_spec):
    """Score one block on a worker: ``(n,)`` array of ``dtype``."""
    with _SCORING_LOCK:
        threads = _block_threads(threads_spec)
        if threads is None:
            scores = getattr(estimator, method)(block)
        else:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                scores = getattr(estimator, method)(block)
            finally:
                torch.set_num_threads(before)
    scores = np.asarray(scores)
    if scores.shape != (len(block),):
        raise ValueError(
            f"{type(estimator).__name__}.{method} returned shape {scores.shape} for a block of "
            f"{len(block)} samples; expected ({len(block)},)."
        )
    return scores.astype(dtype, copy=False)


def _block_threads(threads_spec):
    if threads_spec is None or isinstance(threads_spec, int):
        return threads_spec
    from distributed import get_worker
    from distributed.comm import get_address_host

    try:
        host = get_address_host(get_worker().address)
    except ValueError:  # not on a worker (e.g. the synchronous scheduler)
        host = None
    # A worker on a host unknown at call time (one that joined later) counts as
    # alone there; a restarted worker on a known host shares it as before.
    return max(1, _usable_cores() // threads_spec.get(host, 1))


def score_dask(estimator, X, *, method="score_samples", client=None, torch_threads="auto",
               compute=False):
    """Score a dask array block by block on a ``distributed`` cluster.

    The fitted estimator (a detector, or a ``Pipeline`` such as
    ``BlockFeatureExtractor`` -> detector, with its torch model) is scattered
    to every worker once; each task then scores one block of ``X`` with
    ``getattr(estimator, method)(block)``. The scores equal those of
    ``getattr(estimator, method)(X.compute())`` in the calling process.

    Parameters
    ----------
    estimator : fitted estimator
        A fitted detector or ``Pipeline`` ending in one; it and its model must
        be picklable (classes defined in an importable module, not in
        ``__main__`` of a script run elsewhere).
    X : dask.array.Array of shape (n_samples, ...)
        Images ``(n_samples, channels, height, width)`` or features
        ``(n_samples, n_features)``, chunked along the first axis only. Each
        block must fit in a worker's memory and is scored in one call, so
        choose blocks of a few hundred to a few thousand images.
    method : {"score_samples", "decision_function", "predict"}, \
            default="score_samples"
        The estimator's method to call. Scores are float64, predictions int64.
    client : distributed.Client, default=None
        The cluster's client; ``None``: the current default client.
    torch_threads : "auto", int or None, default="auto"
        torch intra-op threads while a worker scores a block. ``"auto"``:
        the worker's usable cores divided by the number of workers on its
        host (at least 1), so that workers x threads <= cores; an int: that
        many; ``None``: leave torch's setting alone. The previous setting is
        restored after each block.
    compute : bool, default=False
        ``True``: compute on the cluster and return a NumPy array; ``False``:
        return the lazy dask array (compute it with the same client).

    Returns
    -------
    scores : dask.array.Array or ndarray of shape (n_samples,)
        Chunked like the first axis of ``X``; block ``i`` scores block ``i``
        of ``X``.

    Raises
    ------
    ImportError
        When dask or distributed is not installed.
    TypeError
        When ``X`` is not a dask array.
    ValueError
        When ``X`` is chunked along another axis than the first, ``method``
        is unknown, or no client is running.
    sklearn.exceptions.NotFittedError
        When the estimator is not fitted.

    Notes
    -----
    A worker scores one block at a time (see the module docstring), so start
    workers with ``threads_per_worker=1`` and as many workers as processes
    you want per machine. The estimator is held by the workers as one
    scattered, replicated piece of data: when a worker dies, the blocks it
    was scoring are recomputed on another worker, which holds a copy. If
    every worker holding it dies, call ``score_dask`` again.

    See Also
    --------
    sklearn_ood.BlockFeatureExtractor : the feature step of an image pipeline.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da  # doctest: +SKIP
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> from sklearn_ood import KNN
    >>> from sklearn_ood.distributed import score_dask
    >>> rng = np.random.default_rng(0)
    >>> knn = KNN(n_neighbors=5).fit(rng.normal(size=(200, 8)))
    >>> X = da.from_array(rng.normal(size=(1000, 8)), chunks=(250, 8))  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, \\
    ...         Client(cluster) as client:  # doctest: +SKIP
    ...     scores = score_dask(knn, X, client=client, compute=True)
    ...     np.allclose(scores, knn.score_samples(X.compute()))
    True
    """
    da, distributed = _import_dask()
    _check_dask_array(X, da)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}; got {method!r}.")
    if not hasattr(estimator, method):
        raise TypeError(f"{type(estimator).__name__} has no method {method!r}.")
    check_is_fitted(estimator)
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError(
                "No dask client is running; start one, e.g. client = "
                "distributed.Client(distributed.LocalCluster()), or pass client=."
            ) from None
    threads_spec = _torch_threads_spec(client, torch_threads)
    dtype = _METHODS[method]

    # One copy per worker, referenced by key from every task (not in the graph).
    remote = client.scatter(estimator, broadcast=True, hash=False)
    scores = da.map_blocks(
        _score_block, remote, X, method, dtype, threads_spec,
        drop_axis=list(range(1, X.ndim)), chunks=(X.chunks[0],),
        meta=np.empty((0,), dtype=dtype),
    )
    if compute:
        return client.compute(scores).result()
    return scores
