"""flashsale token: a buyer token the API accepts, signed with the configured HS256 secret."""

from __future__ import annotations

import jwt
import pytest

from shared import buyer_tokens
from tests.support.buyers import BUYER_SECRET
from tests.support.cli import Operator


def test_token_prints_a_token_for_sub_signed_with_the_secret(
    operator: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHSALE_BUYER_JWT_SECRET", BUYER_SECRET)
    monkeypatch.setenv("FLASHSALE_BUYER_JWT_AUDIENCE", "flashsale")

    result = operator.run("token", "alice", "--ttl", "60")

    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), BUYER_SECRET, algorithms=["HS256"], audience="flashsale")
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 60


def test_token_uses_the_secret_flashsale_up_keeps(operator: Operator) -> None:
    operator.var_dir.mkdir(parents=True, exist_ok=True)
    (operator.var_dir / buyer_tokens.SECRET_FILE).write_text(BUYER_SECRET + "\n")

    result = operator.run("token", "bob")

    claims = jwt.decode(result.output.strip(), BUYER_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["exp"] - claims["iat"]) == ("bob", buyer_tokens.DEFAULT_TTL_SECONDS)


def test_token_without_a_secret_says_where_to_put_one(operator: Operator) -> None:
    result = operator.run("token", "alice")

    assert result.exit_code == 2
    assert "FLASHSALE_BUYER_JWT_SECRET" in result.output
