"""Entry points other apps' events reach (settings.EVENT_HANDLERS)."""

from .services import on_event

__all__ = ["on_event"]
