"""Shared memory reading of the perf scripts (Linux ``/proc``)."""


def status_kib(field):
    """A ``/proc/self/status`` field in KiB, e.g. ``"VmRSS"`` or ``"VmHWM"`` (the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")
