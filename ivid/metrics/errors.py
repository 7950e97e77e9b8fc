"""The one exception type of ``ivid.metrics``."""

from ivid.errors import IvidError


class MetricsError(IvidError, ValueError):
    """A user-facing evaluation error; the message names the file, folder or option at fault.

    Raised for: a missing or empty image folder, an unreadable image, a fake image
    of the wrong size, too few images for a metric, a cache that does not match
    the requested settings, and missing Inception weights (offline).
    """
