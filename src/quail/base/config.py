"""The recipe of a built-in model. Every field enters the cache key, so changing one retrains."""

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class BaseConfig:
    """Architecture, optimisation, stopping rule, and the grid the finished weights sit on.

    `snap` names a quail quantization spec (None = leave the weights where training put them).
    Snapping puts the model exactly on that grid, the regime where quantization erases small
    unlearning updates (docs/METHODS.md, "Built-in benchmark regime").
    """

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    seed: int = 0
    lr: float = 3e-3
    batch_size: int = 32
    warmup_steps: int = 30
    max_epochs: int = 300
    eval_every: int = 5
    target_accuracy: float = 0.95
    snap: str | None = "int4"
    # False: the "retrained" reference, trained on the retain entities only (MUSE PrivLeak)
    train_forget: bool = True
    snap_lr: float = 3e-4
    snap_max_epochs: int = 60
    # Matrices this small gain nothing from more threads, and on a shared machine two threads
    # ran many times slower than one (docs/BENCHMARKS.md); None = torch's default.
    threads: int | None = 1

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "BaseConfig":
        return replace(self, **changes)


BASE_CONFIG = BaseConfig()

# The claims classifier learns a label per claim, a smaller job than hundreds of facts.
CLASSIFIER_CONFIG = BaseConfig(
    hidden_size=64,
    num_layers=2,
    intermediate_size=256,
    warmup_steps=20,
    max_epochs=100,
    eval_every=2,
)
