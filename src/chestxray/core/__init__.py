"""What every stage shares: params, output paths, errors, atomic writes, the stage runner."""
