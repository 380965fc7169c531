from __future__ import annotations

from spectral.redact import MASK, redact, redact_obj, register_secret


def test_uri_password_masked() -> None:
    out = redact("connecting to postgresql://admin:pa55word@db.example:5432/app failed")
    assert "pa55word" not in out and f"admin:{MASK}@db.example" in out


def test_conninfo_and_headers_masked() -> None:
    assert "xyz" not in redact("host=h password=xyz user=u")
    assert "topsecret" not in redact("password='topsecret' dbname=x")
    assert "abc.def-ghi" not in redact("Authorization: Bearer abc.def-ghi")
    assert "sbp_1234567890abcdef" not in redact("token sbp_1234567890abcdef used")


def test_registered_secret_masked_everywhere() -> None:
    register_secret("plain-looking-value-42")
    assert "plain-looking-value-42" not in redact("the value plain-looking-value-42 appears")
    nested = redact_obj({"a": ["x plain-looking-value-42"], "b": 3})
    assert nested == {"a": [f"x {MASK}"], "b": 3}


def test_harmless_text_untouched() -> None:
    text = "postgresql://postgres@/postgres?host=/tmp/run&port=5432"
    assert redact(text) == text


def test_quote_around_a_conninfo_kept() -> None:
    # an unquoted password ends before the quote that closes the message's own quoting
    assert redact('invalid DSN "host=h password=s3cret"') == f'invalid DSN "host=h password={MASK}"'
    assert redact("dsn 'password=s3cret'") == f"dsn 'password={MASK}'"
    # a quote inside the value is part of it, masked with the rest
    out = redact('password=ab"cd user=u')
    assert "cd" not in out.split("user")[0] and out.endswith("user=u")


def test_a_file_named_passwd_is_not_a_secret() -> None:
    text = "could not open /etc/passwd: permission denied"
    assert redact(text) == text
    assert "hunter2" not in redact("passwd: hunter2")


def test_a_json_key_masked() -> None:
    out = redact('{"user": "u", "password": "s3cret", "db_pass": 1}')
    assert "s3cret" not in out and '"user": "u"' in out
