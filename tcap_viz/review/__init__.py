"""Review stage: what an analyst sees and decides about a run (used by the UI, usable without it)."""
