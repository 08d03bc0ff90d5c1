"""Which stems to write: each output is a source, or the sum of several (``--two-stems``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from convsep.errors import ConvSepError


@dataclass(frozen=True)
class Output:
    """One output stem: the sum of the listed sources (indices into the model's sources)."""
    name: str
    sources: tuple[int, ...]


def plan_outputs(sources: Sequence[str], stems: Sequence[str] | None = None,
                 two_stems: str | None = None) -> list[Output]:
    """Which stems to write: all sources, a subset (``stems``), or ``two_stems`` = X giving
    X and no_X (the sum of the other sources, so the two add up to the mixture)."""
    index = {name: i for i, name in enumerate(sources)}
    if two_stems is not None:
        if two_stems not in index:
            raise ConvSepError(f"--two-stems: unknown source {two_stems!r}; the model has {', '.join(sources)}")
        rest = tuple(i for i in range(len(sources)) if i != index[two_stems])
        return [Output(two_stems, (index[two_stems],)), Output(f"no_{two_stems}", rest)]
    if stems:
        unknown = [s for s in stems if s not in index]
        if unknown:
            raise ConvSepError(f"unknown stem(s) {', '.join(unknown)}; the model has {', '.join(sources)}")
        return [Output(s, (index[s],)) for s in dict.fromkeys(stems)]
    return [Output(name, (i,)) for i, name in enumerate(sources)]
