"""The process around the code: the allocator setting (allocator.py), SIGTERM/SIGHUP as
exceptions (os_signals.py) and the choice of torch device (device.py). Imports nothing of
convsep but errors."""
