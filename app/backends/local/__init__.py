"""PLACEHOLDER: the offline backend (being written)."""
from app.backends.base import BackendDeclined, EditRequest, EditResult, ImageBackend


class LocalBackend(ImageBackend):
    name = "local"
    can_generate = True
    accepts_mask = True

    def run(self, request: EditRequest) -> EditResult:
        raise BackendDeclined("placeholder")
