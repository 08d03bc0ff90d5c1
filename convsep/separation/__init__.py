"""Separation: the offline ``Separator`` (separator.py: chunked, exact streaming, Wiener
post-filter, exported backends), the stems it writes (stems.py), the test-time speed
ensemble (speed_ensemble.py), and the causal ``RealtimeSeparator`` (realtime.py) with its
live, pipe and file I/O (realtime_io.py)."""
