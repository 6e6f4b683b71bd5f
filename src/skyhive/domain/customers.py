"""Customers: who orders deliveries and receives invoices."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Pragmatic, not RFC 5322: one @, a dotted domain with a 2+ letter top level, no spaces.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}$"
)
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]{6,24}$")


def email_key(email: str) -> str:
    """What makes two addresses the same customer: the address, case-insensitively."""
    return email.strip().lower()


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=2, max_length=50)
    zip: str = Field(pattern=r"^[0-9]{5}(-[0-9]{4})?$")


def _email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise ValueError("not a valid email address")
    return value


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    email: str
    phone: str | None = Field(default=None, pattern=PHONE_RE.pattern)
    address: Address | None = None

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        return _email(value)


class CustomerPatch(BaseModel):
    """Fields to change; an absent or null field keeps its value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = None
    phone: str | None = Field(default=None, pattern=PHONE_RE.pattern)
    address: Address | None = None

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str | None) -> str | None:
        return None if value is None else _email(value)
