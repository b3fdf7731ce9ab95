"""The evaluate stage: per-class metrics with confidence intervals, operating points, report."""
