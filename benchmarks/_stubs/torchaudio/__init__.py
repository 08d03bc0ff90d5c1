"""Empty stand-in for torchaudio, which is not available with this torch build.

The peers' model code imports torchaudio at module level but does not call it for what the
benchmarks use (their model classes on tensors); ``benchmarks/_common.py`` puts this folder
on ``sys.path`` only when no real torchaudio is installed.
"""
