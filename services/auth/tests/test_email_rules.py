"""Pure units: which email addresses are valid, how they are stored, and when two are one."""

# The lookalike characters are the subject of these tests.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import sys

import pytest
from auth_service.domain.users import canonical_email, email_key, parsed_email
from hypothesis import example, given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("address", "canonical"),
    [
        ("Ann@Example.EDU", "ann@example.edu"),
        ("ｓtu1@example.com", "stu1@example.com"),  # fullwidth s
        ("𝐬tu1@example.com", "stu1@example.com"),  # mathematical bold s
        ("ＳＴＵ１@ＥＸＡＭＰＬＥ.ＣＯＭ", "stu1@example.com"),
        ("ﬁona@example.com", "fiona@example.com"),  # the fi ligature
        ("Straße@example.de", "strasse@example.de"),  # full case folding: ß is ss
        ("STRASSE@example.de", "strasse@example.de"),
        ("e\u0301mile@example.fr", "\u00e9mile@example.fr"),  # combining acute: é
        ("\u00c9mile@example.fr", "\u00e9mile@example.fr"),
        # Turkish dotted capital I folds to i + combining dot, not to a plain i
        # (Postgres lower() made İnfo and info one address).
        ("İnfo@example.com", "i\u0307nfo@example.com"),
        ("ΣΊΣΥΦΟΣ@example.gr", "σίσυφοσ@example.gr"),  # final sigma folds like any sigma
    ],
)
def test_canonical_form_folds_case_and_compatibility_characters(
    address: str, canonical: str
) -> None:
    assert canonical_email(address) == canonical


def test_dotted_capital_i_and_plain_i_stay_apart() -> None:
    assert canonical_email("İnfo@example.com") != canonical_email("info@example.com")
    assert canonical_email("ınfo@example.com") != canonical_email("info@example.com")  # dotless ı


def test_every_code_point_folds_to_a_form_that_folds_to_itself() -> None:
    folded = [canonical_email(chr(cp)) for cp in range(sys.maxunicode + 1)]

    assert [f for f in folded if canonical_email(f) != f] == []


@given(st.text(max_size=80))
@example("ǅ\u0345ﬃ\u0130")
def test_the_canonical_form_is_its_own_canonical_form(text: str) -> None:
    once = canonical_email(text)

    assert canonical_email(once) == once


@pytest.mark.parametrize(
    "raw",
    [
        "user@school.local",
        "user@mail.internal",
        "user@printer.lan",
        "user@mail.test",
        "user@sub.school.local",
        "a" * 64 + "@example.com",
        "ｓtu1@example.com",
        "Ann@bücher.example",
    ],
)
def test_addresses_on_internal_domains_and_within_rfc_5321_lengths_are_accepted(
    raw: str,
) -> None:
    address, problems = parsed_email("email", raw)

    assert problems == []
    assert address is not None


@pytest.mark.parametrize(
    "raw",
    [
        "user@example.invalid",
        "user@localhost",
        "x@localhost",
        "user@host.localhost",
        "user@site.onion",
        "user@school",  # no dot: nobody's mail runs on a bare host name here
        "a" * 65 + "@example.com",  # local part over 64 octets
        "é" * 33 + "@example.com",  # 33 characters, 66 octets
        "a" * 64 + "@" + ".".join(["b" * 63] * 3),  # each part within its limit, 256 in all
        "a@" + ".".join(["b" * 63] * 4),  # domain over 253
        "\ufdfa" * 20 + "@example.com",  # 60 octets, 660 once its ligatures are spelt out
        "no-at-sign",
        "two@@example.edu",
    ],
)
def test_special_use_domains_and_over_long_addresses_are_refused(raw: str) -> None:
    address, problems = parsed_email("email", raw)

    assert address is None
    assert [(p.field, p.code) for p in problems] == [("email", "EMAIL_INVALID")]


def test_the_address_is_stored_as_entered_with_its_domain_normalized() -> None:
    address, _ = parsed_email("email", "  Stu.Dent@Example.EDU ")

    assert address is not None
    assert (address.address, address.canonical) == ("Stu.Dent@example.edu", "stu.dent@example.edu")
    fullwidth, _ = parsed_email("email", "ｓtu1@example.com")
    assert fullwidth is not None
    assert (fullwidth.address, fullwidth.canonical) == ("ｓtu1@example.com", "stu1@example.com")


@pytest.mark.parametrize(
    "typed",
    [
        " STU1@Example.com ",
        "ｓtu1@example.com",
        "𝐬tu1@EXAMPLE.com",
        "stu1@ＥＸＡＭＰＬＥ.com",
    ],
)
def test_sign_in_keys_every_lookalike_to_the_stored_canonical_form(typed: str) -> None:
    stored, _ = parsed_email("email", "stu1@example.com")

    assert stored is not None
    assert email_key(typed) == stored.canonical


def test_sign_in_keys_an_idna_domain_like_its_unicode_form() -> None:
    stored, _ = parsed_email("email", "ann@bücher.example")

    assert stored is not None
    assert email_key("ann@xn--bcher-kva.example") == stored.canonical


@given(
    st.emails()
    | st.from_regex(r"\A[A-Za-z0-9._%+-]{1,70}@[A-Za-z0-9.-]{1,40}\Z")
    | st.text(max_size=40)
)
def test_sign_in_and_storage_fold_a_valid_address_alike(raw: str) -> None:
    stored, _ = parsed_email("email", raw)

    if stored is not None:
        assert email_key(raw) == stored.canonical
