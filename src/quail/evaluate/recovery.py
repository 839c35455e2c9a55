"""Recovery: how much of what unlearning removed comes back under quantization.

`recovery(b) = (F_u(b) − F_u(fp)) / (F_orig(fp) − F_u(fp))` for a forget metric F where lower
means more forgotten: 0 = nothing came back, 1 = all of it. When unlearning forgot nothing
(`F_orig(fp) − F_u(fp)` at or below `min_forgotten`), the ratio means nothing and is reported as
undefined with the reason, never as a number.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recovery:
    value: float | None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"value": self.value, "reason": self.reason or None}


def recovery(
    original_fp: float, unlearned_fp: float, unlearned_quantized: float, min_forgotten: float = 1e-9
) -> Recovery:
    forgotten = original_fp - unlearned_fp
    if forgotten <= min_forgotten:
        return Recovery(None, "nothing was forgotten at full precision")
    return Recovery((unlearned_quantized - unlearned_fp) / forgotten)
