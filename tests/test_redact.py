"""The value scrubber shared by the library and the engine, case by case."""

from __future__ import annotations

import pytest

from accessproof.redact import MAX_SCANNED_LENGTH, clean_attributes, is_sensitive


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242",
        "4000-0566-5566-5556",
        "378282246310005",
        "evt_4242424242424242",
        "card: 5555555555554444.",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "evt_sk_live_00000000",
        "rk_test_51H8x2aKXk0123456789abc",
        "whsec_5f6a7b8c9d0e1f2a3b4c5d6e",
        "pi_3MtwBw_secret_YrKJUKribcBjcG8",
        "Authorization: Bearer abcdefgh12345678",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
        "jenny.rosen@example.com",
        "203.0.113.7",
        "x" * (MAX_SCANNED_LENGTH + 1),
    ],
)
def test_secrets_and_personal_data_are_sensitive(text: str) -> None:
    """Card numbers, keys, tokens, emails and addresses never pass."""
    assert is_sensitive(text)


@pytest.mark.parametrize(
    "text",
    [
        "evt_1Pgc76B7WZ01zgkWwyRHS12y",
        "evt_e5e9d4cdaa23198063242106",
        "cus_QXg1o8vcGmoR32",
        "price_1Pro",
        "customer.subscription.updated",
        "pro",
        "1.45.2",
        "4242424242424241",
        "9f3c2e1d4b5a69788796a5b4c3d2e1f001122334",
    ],
)
def test_ids_versions_and_plain_words_are_kept(text: str) -> None:
    """Stripe ids (even with long digit runs after a letter), versions and SHAs
    pass; a 16-digit number that fails the Luhn check is no card."""
    assert not is_sensitive(text)


def test_keys_off_the_allow_list_are_dropped_whatever_their_value() -> None:
    """Only allow-listed keys survive, and a sensitive value drops its key."""
    kept, dropped = clean_attributes(
        {
            "stripe.customer.id": "cus_QXg1o8vcGmoR32",
            "stripe.subscription.id": "jenny.rosen@example.com",
            "customer.name": "Jenny Rosen",
        }
    )

    assert kept == {"stripe.customer.id": "cus_QXg1o8vcGmoR32"}
    assert sorted(dropped) == ["customer.name", "stripe.subscription.id"]
