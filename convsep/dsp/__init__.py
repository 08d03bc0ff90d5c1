"""Signal processing: the STFT and its exact chunked inverse, blocks and overlap-add
(spectral.py), and soft masks (masks.py). Tensors in, tensors out; no files, no models."""
