import json
from decimal import Decimal

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class DecimalJSONParser(JSONParser):
    """JSON with numbers read as Decimal, so money never passes through a float."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return json.loads(raw.decode("utf-8"), parse_float=Decimal)
        except UnicodeDecodeError as exc:
            raise ParseError("The body is not UTF-8 encoded JSON.") from exc
        except json.JSONDecodeError as exc:
            raise ParseError(f"The body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc
