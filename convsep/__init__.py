"""convsep: fast convolutional music source separation (vocals, drums, bass, other)."""
__version__ = "0.1.0"
