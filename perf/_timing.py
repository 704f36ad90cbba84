"""Shared timing loop of the perf scripts: every mode timed in every round."""

import time


def time_rotated(modes, repeats):
    """Wall and CPU seconds of each call of ``modes[name]()``, ``repeats`` rounds.

    The order of the modes is rotated every round, so that no mode always runs
    first (cold) or last (after the others heated the machine).

    Returns
    -------
    wall, cpu : dict of str to list of float
    """
    wall = {name: [] for name in modes}
    cpu = {name: [] for name in modes}
    order = list(modes)
    for rep in range(repeats):
        k = rep % len(order)
        for name in order[k:] + order[:k]:
            t0, c0 = time.perf_counter(), time.process_time()
            modes[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu
