"""storage stage of the pipeline: run directories on disk."""
