from __future__ import annotations

import pytest

import llmpulse


def test_version_is_a_stable_content_hash() -> None:
    a = llmpulse.Prompt("support", "Hi {name}")
    b = llmpulse.Prompt("support", "Hi {name}")
    c = llmpulse.Prompt("support", "Hello {name}")
    assert a.version == b.version
    assert a.version != c.version
    assert len(a.version) == 12
    assert a == b
    assert llmpulse.Prompt("support", "Hi {name}", version="v7").version == "v7"


def test_format_fills_and_names_missing_variables() -> None:
    p = llmpulse.Prompt("support", "You help {user} with {product}.")
    assert p.variables == {"user", "product"}
    assert p.format(user="Ann", product="Acme") == "You help Ann with Acme."
    with pytest.raises(KeyError, match="product"):
        p.format(user="Ann")


@pytest.mark.parametrize(("args", "match"), [(("", "t"), "name"), (("n", 3), "template"), (("n", "{"), "format")])
def test_invalid_prompts_raise_config_error(args: tuple[object, object], match: str) -> None:
    with pytest.raises(llmpulse.ConfigError, match=match):
        llmpulse.Prompt(*args)  # type: ignore[arg-type]
