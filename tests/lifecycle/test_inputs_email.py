"""The plain-address short cut of NormalizedEmail (lifecycle/inputs.py) accepts nothing email-validator
refuses, and gives back what it gives back."""

import random

import pydantic
import pytest
from pydantic import EmailStr, TypeAdapter

from lifecycle.inputs import CustomerIn, plain_email

FULL = TypeAdapter(EmailStr)
ALPHABET = "aZ09._+-@@..--xn" + "ü!#' "
DOMAINS = ["example.com", "shop.de", "a.b.co", "local", "x.local", "test", "mail.test", "localhost", "home.arpa",
           "ab--cd.com", "xn--bcher-kva.com", "1.23", "a-.com", "-a.com", "a.c", "a" * 64 + ".com",
           ("a" * 63 + ".") * 4 + "com", "onion.org", "x.onion", "invalid", "b.invalid", "münchen.de"]


def candidates(n: int) -> list[str]:
    rnd = random.Random(16)
    out = [f"{local}@{domain}" for local in ("ada", "Ada.Lovelace", "a..b", ".a", "a.", "a+tag", "a_b-c", "x" * 65)
           for domain in DOMAINS]
    for _ in range(n):
        local = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 8)))
        domain = rnd.choice(DOMAINS) if rnd.random() < 0.5 else "".join(rnd.choice(ALPHABET) for _ in range(8))
        out.append(f"{local}@{domain}")
    return out


def test_every_address_the_short_cut_takes_is_valid_and_unchanged_but_for_case():
    taken = 0
    for address in candidates(20_000):
        if not plain_email(address):
            continue
        taken += 1
        assert FULL.validate_python(address).lower() == address.lower(), address
    assert taken > 200  # the short cut is actually taken for ordinary addresses


@pytest.mark.parametrize("address", ["ada@x.local", "ada@mail.test", "ada@home.arpa", "ab@ab--cd.com",
                                     "a..b@example.com", "ada@localhost"])
def test_an_address_email_validator_refuses_is_not_taken_and_is_refused(address):
    assert not plain_email(address)
    with pytest.raises(pydantic.ValidationError):
        CustomerIn.model_validate({"email": address})


def test_a_customer_email_is_normalized_either_way():
    assert CustomerIn.model_validate({"email": "Ada.Lovelace@Example.COM"}).email == "ada.lovelace@example.com"
    assert CustomerIn.model_validate({"email": "  Ada@München.de "}).email == "ada@münchen.de"
