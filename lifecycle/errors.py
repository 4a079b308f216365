"""What a service refuses with: one error type per kind, each with a stable code and a message a person can act on."""



class ServiceError(Exception):
    """A request that cannot be applied as asked; `code` is stable, `message` is for people."""

    status = 400

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409
