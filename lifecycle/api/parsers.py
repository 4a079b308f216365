from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .. import jsonbody


class DecimalJSONParser(JSONParser):
    """JSON with numbers read as Decimal, so money never passes through a float.

    Bounded (`lifecycle.jsonbody`): nesting depth, number length, NaN and lone surrogates are
    refused here, once, for every API route, as a 400 whose code says which.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return jsonbody.loads(raw)
        except jsonbody.JSONBodyError as exc:
            raise ParseError(exc.message, code=exc.code) from exc
