"""Images, splits and statistics: from a dataset folder to model-ready batches."""
