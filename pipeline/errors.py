"""Domain errors. The CLI prints their message and exits non-zero; no traceback for users."""


class PipelineError(Exception):
    """Base class: an error a user can act on, with a message that says how."""


class ConfigError(PipelineError):
    """The YAML config (or an override, or the playbook) is invalid."""


class IngestError(PipelineError):
    """A source cannot be read or is mostly bad."""


class FeatureError(PipelineError):
    """Feature inputs are missing or inconsistent."""


class TrainError(PipelineError):
    """Training cannot proceed (too few snapshots, bad split, ...)."""


class BundleError(PipelineError):
    """A model bundle is missing, tampered with or truncated."""


class ScoreError(PipelineError):
    """Scoring cannot proceed (missing model, missing feature columns, ...)."""


class OutputError(PipelineError):
    """An output set cannot be written (disk full, permission denied, ...); the previous set is kept."""
