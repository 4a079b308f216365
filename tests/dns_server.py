"""A real DNS server on 127.0.0.1 for tests: dnspython's Resolver asks it over UDP, as it asks a public one.

`records[(name, type)] = [values]` (TXT values as one string each, a CNAME's target); a name with no record of
any type answers NXDOMAIN, a known name without the asked type answers no data. `silent` drops every query,
as a network that does not answer."""

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeDns:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.silent = False
        self.asked: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.asked.append((name, rdtype))
        values = self.records.get((name, rdtype))
        if values:
            texts = [" ".join(f'"{chunk}"' for chunk in _chunks(v)) if rdtype == "TXT" else v for v in values]
            response.answer.append(dns.rrset.from_text_list(question.name, 300, "IN", rdtype, texts))
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def _serve(self) -> None:
        while True:
            try:
                data, address = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.silent:
                continue
            self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), address)

    def close(self) -> None:
        self.sock.close()


def _chunks(value: str) -> list[str]:
    """A TXT value longer than 255 bytes is published as several strings (a DKIM key is)."""
    return [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
