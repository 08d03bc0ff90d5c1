"""Evaluation of separated sources: BSSEval v4 (a fast exact torch port of museval), MDX-style
global SDR, oracle separations, dataset evaluation (``convsep evaluate``) and reports."""

from convsep.evaluate.bsseval import bss_eval_v4, evaluate
from convsep.evaluate.report import render_report
from convsep.evaluate.runner import evaluate as evaluate_dataset
from convsep.evaluate.sdr import global_sdr

__all__ = ["bss_eval_v4", "evaluate", "evaluate_dataset", "global_sdr", "render_report"]
