"""Evaluation of separated sources: BSSEval v4 (a fast exact torch port of museval) and
MDX-style global SDR."""

from convsep.evaluate.bsseval import bss_eval_v4, evaluate
from convsep.evaluate.sdr import global_sdr

__all__ = ["bss_eval_v4", "evaluate", "global_sdr"]
