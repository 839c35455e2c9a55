"""Where the built-in demo study's config lives (shipped inside the package)."""

from pathlib import Path

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")
