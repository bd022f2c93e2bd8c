"""Operation modules; importing this package registers every operation."""
from . import filters, geometry, neural, people, regions, styles, text, tone  # noqa: F401
