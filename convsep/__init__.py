"""convsep: fast convolutional music source separation (vocals, drums, bass, other).

    import convsep
    stems = convsep.separate(waveform, 44100)             # {"vocals": (2, n), ...}
    convsep.separate_file("song.mp3", "separated/")       # separated/song/vocals.wav ...
    convsep.keep_freed_memory()                           # optional: 1.4-1.5x faster, as the CLI
"""
__version__ = "0.1.0"

from convsep.allocator import keep_freed_memory  # noqa: E402
from convsep.api import separate, separate_file  # noqa: E402
from convsep.errors import ConvSepError  # noqa: E402
from convsep.realtime import RealtimeSeparator  # noqa: E402
from convsep.separate import Separator  # noqa: E402

__all__ = ["ConvSepError", "RealtimeSeparator", "Separator", "keep_freed_memory", "separate", "separate_file",
           "__version__"]
