"""Operation modules; importing this package registers every operation."""
from . import background, faces, filters, geometry, neural, regions, styles, text, tone  # noqa: F401
