"""Timing and memory helpers shared by the benchmarks: interleaved medians, peak memory of one call."""

import ctypes
import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(
    functions: dict[str, Callable], repeats: int, warmup: int = 1, untimed_calls: int = 0
) -> dict[str, float]:
    """Median wall time (s) of each function, timed in turns so that load on a shared machine hits all of them alike.

    Every function is called `warmup` times before the first turn. In each turn it is called `untimed_calls` times,
    then once timed: untimed calls keep what the previous function left in caches and the allocator from being
    charged to the next one (cheap calls such as feature extraction need them; large models do not).
    """
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            for _ in range(untimed_calls):
                function()
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def synchronize():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory_mib(function: Callable, device: str = "cpu") -> float:
    """Memory a call needs beyond what was held before it: the peak of CUDA allocations on a GPU; on the CPU the rise
    of the process's peak resident set (Linux: freed heap is returned first and the peak counter reset)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # reset the peak-RSS counter to the current RSS
    before = _proc_status_kib("VmRSS")
    function()
    return (_proc_status_kib("VmHWM") - before) / 1024
