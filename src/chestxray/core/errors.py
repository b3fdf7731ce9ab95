"""The one base class of every error the pipeline reports without a traceback."""


class PipelineError(Exception):
    """A problem with the user's input, params or data, explained in one line."""
