"""Files: reading, writing and resampling audio with the channel policy (audio.py), checks
of in-memory inputs (inputs.py), safe output paths, folder claims and cleanup of
temporaries (filesafety.py), and atomic writes (atomic.py)."""
