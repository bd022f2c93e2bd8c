"""PLACEHOLDER: the OpenAI backend (being written)."""
from app.backends.base import BackendFailed, EditRequest, EditResult, ImageBackend


class OpenAIBackend(ImageBackend):
    name = "openai"
    can_generate = True
    accepts_mask = True
    accepts_references = True

    def run(self, request: EditRequest) -> EditResult:
        raise BackendFailed("placeholder")
