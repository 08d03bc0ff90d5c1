"""Published scores to place MUSDB18 results against (SDR in dB, per source).

The DeepConvSep and IBM rows are on DSD100 with BSSEval v3 (the SiSEC 2016 campaign), so
they compare only loosely with MUSDB18 / BSSEval v4 numbers; every other row is MUSDB18 test
with BSSEval v4, median over frames then median over tracks (SiSEC 2018).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    system: str
    data: str      # dataset and split
    metric: str    # how the numbers were computed
    source: str    # where they were published
    sdr: dict[str, float]

    @property
    def comparable(self) -> bool:
        """True when the numbers are MUSDB18 test, BSSEval v4 median of medians."""
        return self.data == MUSDB18 and self.metric == V4


MUSDB18 = "MUSDB18 test"
DSD100 = "DSD100 test"
V4 = "BSSEval v4, median of medians"
V3 = "BSSEval v3, median of medians"
SISEC16 = "SiSEC 2016 results (Liutkus et al., LVA/ICA 2017)"
SISEC18 = "SiSEC 2018 results (Stoter, Liutkus, Ito, LVA/ICA 2018)"


def _sdr(vocals: float, drums: float, bass: float, other: float) -> dict[str, float]:
    return {"vocals": vocals, "drums": drums, "bass": bass, "other": other}


PUBLISHED: tuple[Published, ...] = (
    Published("DeepConvSep (CHA)", DSD100, V3, SISEC16, _sdr(1.58, 1.87, 0.04, 1.05)),
    Published("Oracle IBM", DSD100, V3, SISEC16, _sdr(9.78, 7.27, 5.85, 7.16)),
    Published("Oracle IRM1", MUSDB18, V4, SISEC18, _sdr(8.52, 7.33, 6.18, 6.92)),
    Published("Oracle IRM2", MUSDB18, V4, SISEC18, _sdr(9.43, 8.45, 7.12, 7.85)),
    Published("Oracle MWF", MUSDB18, V4, SISEC18, _sdr(9.13, 8.09, 6.75, 7.56)),
    Published("Mixture", MUSDB18, V4, SISEC18, _sdr(1.12, 1.33, 0.67, 1.16)),
    Published("Open-Unmix UMX", MUSDB18, V4,
              "Open-Unmix (Stoter et al., JOSS 2019), model card", _sdr(6.32, 5.73, 5.23, 4.02)),
    Published("Open-Unmix UMXL", MUSDB18, V4,
              "Open-Unmix model card (umxl, extra training data)", _sdr(7.21, 7.15, 6.02, 4.89)),
    Published("Spleeter 4 stems + MWF", MUSDB18, V4,
              "Spleeter (Hennequin et al., JOSS 2020)", _sdr(6.86, 6.71, 5.51, 4.55)),
)

# Our methods and the published rows they reproduce.
COUNTERPARTS: dict[str, str] = {
    "oracle-irm1": "Oracle IRM1",
    "oracle-irm2": "Oracle IRM2",
    "oracle-ibm": "Oracle IBM",
    "mixture": "Mixture",
}
