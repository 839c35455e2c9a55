"""Recovery: how much of what unlearning removed comes back under quantization.

`recovery(b) = (F_u(b) − F_u(fp)) / (F_orig(fp) − F_u(fp))` for a forget metric F where lower
means more forgotten: 0 = nothing came back, 1 = all of it. When unlearning forgot nothing
(`F_orig(fp) − F_u(fp)` at or below `min_forgotten`), the ratio means nothing and is reported as
undefined with the reason, never as a number. So is a precision under which the original model
itself keeps less than half of what unlearning removed (`F_orig(b) − F_u(fp)` below half of
`F_orig(fp) − F_u(fp)`): there, little could come back, and a low recovery would flatter the
method (an injected claim that 4-bit rounds away, a fact the quantized base no longer knows).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recovery:
    value: float | None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"value": self.value, "reason": self.reason or None}


def recovery(
    original_fp: float,
    unlearned_fp: float,
    unlearned_quantized: float,
    min_forgotten: float = 1e-9,
    original_quantized: float | None = None,
) -> Recovery:
    forgotten = original_fp - unlearned_fp
    if forgotten <= min_forgotten:
        return Recovery(None, "nothing was forgotten at full precision")
    if original_quantized is not None and original_quantized - unlearned_fp < forgotten / 2:
        return Recovery(None, "the original itself loses this knowledge under this quantizer")
    return Recovery((unlearned_quantized - unlearned_fp) / forgotten)
