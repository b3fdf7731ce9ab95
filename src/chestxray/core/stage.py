"""Run a stage script: logging set up once, one clear line on failure instead of a traceback."""
import logging
import sys

from chestxray.core.errors import PipelineError

# A shell's exit status for a process that SIGINT (Ctrl-C) stopped: 128 + 2.
INTERRUPTED_EXIT = 130


def failure_message(error):
    """The one line a stage prints for ``error`` (a PipelineError or an OSError)."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    # A message quoting a library's multi-line text must still be one line.
    return " ".join(str(error).split())


def run_stage(main):
    """Set up logging, call ``main()``; on a :class:`PipelineError` or ``OSError`` print
    one line and exit 1, on Ctrl-C one line and exit 130.

    PipelineErrors explain bad input; OSErrors that no part of the pipeline
    explained (a missing input, a full disk under ``metrics/``) still get one
    line naming the file and the problem.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        main()
    except (PipelineError, OSError) as error:
        print(f"error: {failure_message(error)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; outputs and metrics were left as they were", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
