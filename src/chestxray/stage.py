"""Run a stage script: one clear line on failure instead of a traceback."""
import sys

from chestxray.errors import PipelineError


def run_stage(main):
    """Call ``main()``; on a :class:`PipelineError` print it and exit with status 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
