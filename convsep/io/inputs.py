"""Checks on what callers of the Python API pass in: arrays, chunks and sample rates.

Waveforms are float samples in [-1, 1], shaped (channels, samples) or (samples,).
- float16/32/64 arrays and tensors are used as they are (as float32).
- Signed PCM integers are scaled by their full range: int8 / 128, int16 / 32768,
  int32 / 2147483648; uint8 is 8-bit PCM centred on 128: (x - 128) / 128.
- Other integer types (int64, uint16/32/64), bool, complex and non-numeric input are refused:
  their scale is ambiguous or they are not audio.
- Lists and tuples are read as float32 numbers.
- A (samples, channels) array (1 or 2 columns and more rows) is refused as transposed.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from convsep.errors import ConvSepError

MIN_RATE, MAX_RATE = 8000, 192000
MAX_CHANNELS = 16
PCM_SCALES = {np.dtype(np.int8): 1 << 7, np.dtype(np.int16): 1 << 15, np.dtype(np.int32): 1 << 31}


def as_waveform(waveform, name: str = "waveform", channels: int | None = None) -> np.ndarray:
    """Anything array-like -> float32 numpy (channels, samples), checked (see the module
    docstring). ``channels``: the exact channel count chunks must have, if any."""
    if torch.is_tensor(waveform):
        array = waveform.detach().cpu()
        if array.dtype == torch.bfloat16:
            array = array.float()
        array = array.numpy()
    elif isinstance(waveform, (np.ndarray, np.generic)):
        array = np.asarray(waveform)
    elif isinstance(waveform, (list, tuple)):
        try:
            array = np.asarray(waveform, dtype=np.float32)
        except (ValueError, TypeError):
            raise ConvSepError(f"{name}: a list must hold numbers in equal-length rows "
                               "(channels, samples); pass a numpy array or a torch tensor") from None
    else:
        raise ConvSepError(f"{name}: expected a numpy array or a torch tensor, got {type(waveform).__name__}")
    array = _to_float(array, name)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ConvSepError(f"{name}: expected (channels, samples) or (samples,), got shape {tuple(array.shape)}")
    rows, cols = array.shape
    expected = channels or 2
    if rows > max(expected, 2) and cols <= 2 and rows > cols:
        raise ConvSepError(f"{name}: shape {tuple(array.shape)} looks transposed: (samples, channels); "
                           f"pass it as (channels, samples), e.g. waveform.T")
    if channels is not None and rows != channels:
        raise ConvSepError(f"{name}: expected chunks of shape ({channels}, n), got {tuple(array.shape)}")
    if rows > MAX_CHANNELS:
        raise ConvSepError(f"{name}: {rows} channels is not audio as this model takes it "
                           f"(shape {tuple(array.shape)}; expected (channels, samples))")
    if not np.isfinite(array).all():
        raise ConvSepError(f"{name}: the audio contains NaN or infinite samples")
    return array


def _to_float(array: np.ndarray, name: str) -> np.ndarray:
    dtype = array.dtype
    if dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    if dtype in PCM_SCALES:
        return (array.astype(np.float32) / PCM_SCALES[dtype]).astype(np.float32, copy=False)
    if dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    if dtype.kind in "iu":
        raise ConvSepError(f"{name}: {dtype} samples have no standard audio scale; pass float samples "
                           "in [-1, 1] or int16/int32 PCM")
    raise ConvSepError(f"{name}: {dtype} samples are not audio; pass float samples in [-1, 1] "
                       "(or int16/int32 PCM)")


def check_rate(rate) -> int:
    """A sample rate as a positive integer in the supported range (44100.0 is accepted)."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ConvSepError(f"sample rate must be an integer number of Hz, got {rate!r}")
    if isinstance(rate, numbers.Integral):
        value = int(rate)
    elif float(rate).is_integer():
        value = int(rate)
    else:
        raise ConvSepError(f"sample rate must be an integer number of Hz, got {rate!r}")
    if not MIN_RATE <= value <= MAX_RATE:
        raise ConvSepError(f"sample rate {value} Hz is outside the supported {MIN_RATE}-{MAX_RATE} Hz")
    return value
