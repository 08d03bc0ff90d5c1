"""convsep: fast convolutional music source separation (vocals, drums, bass, other).

    import convsep
    stems = convsep.separate(waveform, 44100)             # {"vocals": (2, n), ...}
    convsep.separate_file("song.mp3", "separated/")       # separated/song/vocals.wav ...
    convsep.keep_freed_memory()                           # optional: 1.4-1.5x faster, as the CLI

The public API, importable from ``convsep`` itself:

    separate(waveform, rate, model=None, ...)   arrays -> {stem: array}       (convsep.api)
    separate_file(path, outdir, model=None, ...)  a file -> stem files        (convsep.api)
    Separator                                   load once, separate many    (convsep.separation.separator)
    RealtimeSeparator                           causal, chunk by chunk      (convsep.separation.realtime)
    ConvSepError                                every user-facing failure   (convsep.errors)
    keep_freed_memory()                         the allocator setting       (convsep.runtime.allocator)
    __version__

Where the rest lives, by concern, lowest first (a module imports only from its own layer
or the layers before it; tests/test_layout.py checks it):

    convsep.constants      SAMPLE_RATE, SOURCES, VERSION
    convsep.errors         ConvSepError
    convsep.runtime        allocator, os_signals (SIGTERM as an exception), device (resolve_device)
    convsep.dsp            spectral (STFT, blocks, overlap-add), masks (soft masks)
    convsep.io             audio (read/write/resample), inputs (array checks), filesafety, atomic
    convsep.models         config (ConvSepConfig, presets), network (ConvSep), modelfile
                           (load_model, save_model), export (ONNX, TorchScript, load_backend),
                           registry (bundled models and the demo: list_models, load_demo),
                           reframe, widen
    convsep.data           track sources, decoded cache, batch sampler, augmentations, MIR-1K,
                           karaoke_bank (real voices for training)
    convsep.synth          the synthetic corpus (make_corpus)
    convsep.separation     separator, stems (plan_outputs), speed_ensemble, realtime, realtime_io
    convsep.api            get_separator, separate, separate_file, output_paths
    convsep.demo           run_demo: the bundled demo, separated and scored
    convsep.training       config, step, losses, trainer (train), checkpoints, logs, distributed
    convsep.evaluate       bsseval, sdr, oracles, runner, report, two_stems, karaoke_scores
    convsep.serve          the web app (create_app, run_server)
    convsep.cli            one module per command: register() and a handler
"""
from convsep.api import separate, separate_file
from convsep.constants import VERSION as __version__
from convsep.errors import ConvSepError
from convsep.runtime.allocator import keep_freed_memory
from convsep.separation.realtime import RealtimeSeparator
from convsep.separation.separator import Separator

__all__ = ["ConvSepError", "RealtimeSeparator", "Separator", "__version__", "keep_freed_memory", "separate",
           "separate_file"]
