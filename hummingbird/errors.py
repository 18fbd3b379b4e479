"""Exceptions with messages meant for users: each names the file or option and the problem."""


class HummingbirdError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2."""


class CheckpointError(HummingbirdError):
    """A weights file is missing, unreadable, or of another architecture."""


class WeightsUnavailableError(HummingbirdError):
    """Pretrained weights were asked for but cannot be obtained (offline, no cache)."""


class DatasetError(HummingbirdError):
    """A dataset folder, split file, image or mask is missing or malformed."""


class BankError(HummingbirdError):
    """A memory-bank file is unreadable or does not fit the pipeline that loads it."""


class ConfigError(HummingbirdError):
    """An option value is invalid (e.g. an input size not divisible by the patch size)."""


class OutputBusyError(HummingbirdError):
    """Another process is writing the same output (its lock file is held)."""


class OutputError(HummingbirdError):
    """A file or folder cannot be written (disk full, file size limit, read-only folder, no permission)."""


class DownloadError(HummingbirdError):
    """An archive cannot be downloaded (offline, host not answering, HTTP error) or fails its checksum."""
