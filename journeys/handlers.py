"""Entry points other apps' events reach (settings.EVENT_HANDLERS)."""

from .enrollment import on_event

__all__ = ["on_event"]
