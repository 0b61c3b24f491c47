"""ui stage of the pipeline."""
