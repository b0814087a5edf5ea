"""What a new user meets in the first hour: init that guesses right, a plan that predicts the
run, reports that say what to do next, strict spec types, messages that say what is wrong."""

from __future__ import annotations

import pytest

from authmigrate.errors import SpecError
from authmigrate.spec import load_spec_text

BASE_SPEC = """\
[source]
url = "sqlite:///legacy.db"
table = "users"
key = "id"

[target]
url = "sqlite:///new.db"
table = "accounts"

[fields]
id = "id"
email = { from = "email", normalize = "email" }
"""


@pytest.mark.parametrize(
    "old,new,path,expected",
    [
        ("", '[run]\nbatch_size = "500"', "run.batch_size", "expected an integer"),
        ("", '[run]\nretries = "3"', "run.retries", "expected an integer"),
        ("", "[run]\nbatch_size = 500.0", "run.batch_size", "got a number"),
        (
            'table = "accounts"',
            'table = "accounts"\ncreate = "false"',
            "target.create",
            "true or false",
        ),
        (
            'normalize = "email" }',
            'normalize = "email", required = "yes" }',
            "fields.email.required",
            "true or false",
        ),
        ("", '[notify.smtp]\nport = "25"', "notify.smtp.port", "expected an integer"),
        ('key = "id"', "key = 5", "source.key", "expected a string"),
    ],
)
def test_spec_types_are_strict_and_name_the_key(
    old: str, new: str, path: str, expected: str
) -> None:
    """A string where a number or boolean belongs is refused, never coerced."""
    text = BASE_SPEC.replace(old, new, 1) if old else BASE_SPEC + "\n" + new + "\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert err.value.path == path
    assert expected in err.value.message
    assert "got a" in err.value.message  # says what the spec wrote, by type, not the value


def test_strict_spec_still_takes_an_integer_for_a_float() -> None:
    """TOML writes 30 for a timeout of 30 seconds: an integer where a number goes is fine."""
    spec = load_spec_text(
        BASE_SPEC + "\n[notify]\nrate_per_second = 5\n[notify.smtp]\ntimeout = 30\n"
    )
    assert spec.notify is not None and spec.notify.smtp.timeout == 30.0
