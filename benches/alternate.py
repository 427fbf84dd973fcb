"""Timing two contenders fairly on a shared, noisy machine."""


def alternate(runs, first, second, after_run=None):
    """Calls `first` and `second` (each returns seconds) `runs` times, swapping which
    goes first every run so neither always meets a warm or a cold machine. Returns the
    two lists of times; `after_run(run, first_time, second_time)` is called as it goes."""
    a, b = [], []
    for run in range(runs):
        order = [(first, a), (second, b)] if run % 2 == 0 else [(second, b), (first, a)]
        for call, times in order:
            times.append(call())
        if after_run:
            after_run(run, a[-1], b[-1])
    return a, b
