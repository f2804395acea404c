"""api/buyer_auth.py: buyer tokens verified with a secret, a PEM key or a JWKS, refused with 401 before any engine
call, cached until they expire, and a JWKS key rotated in picked up."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis
import sqlalchemy as sa
from freezegun import freeze_time
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from structlog.testing import capture_logs

from api import buyer_auth
from api.app import create_app
from api.buyer_auth import BuyerAuth, InvalidBuyerToken
from api.metrics import BUYER_TOKENS_REFUSED
from engine import Engine
from shared import buyer_tokens, logs
from shared.settings import Settings, load
from tests.support.api import EngineCalls, assert_problem, make_settings, serve
from tests.support.buyers import BUYER_SECRET, JWT_ENV, bearer, ec_key, public_pem, rsa_key, signed, token

pytestmark = pytest.mark.anyio

OTHER_SECRET = "another-secret-of-at-least-32-bytes-xyz"


def auth(**env: str) -> BuyerAuth:
    return BuyerAuth(load({"FLASHSALE_VAR_DIR": "/nonexistent", **env}))


async def refusal(verifier: BuyerAuth, token_: str) -> str:
    with pytest.raises(InvalidBuyerToken) as refused:
        await verifier.verify(token_)
    return refused.value.reason


# --- every refusal the issue lists, through the API: 401 before any engine call -----------------------------------


@pytest.fixture
async def jwt_app(
    redis_url: str, database_url: str, tmp_path: Path, real_redis: redis.Redis, db: sa.Engine
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(make_settings(redis_url, database_url, tmp_path, **JWT_ENV))
    async with serve(app) as http:
        yield app, http


NOW = int(time.time())
RSA = rsa_key()

REFUSED: dict[str, tuple[dict[str, str], str]] = {
    "no token": ({}, "missing"),
    "a token in the wrong header": ({"X-Buyer-Token": token("alice")}, "missing"),
    "a token under another scheme": ({"Authorization": f"Token {token('alice')}"}, "missing"),
    "not a JWT": ({"Authorization": "Bearer not.a.jwt"}, "malformed"),
    "the wrong signature": ({"Authorization": f"Bearer {token('alice')[:-4]}AAAA"}, "bad_signature"),
    "another key": ({"Authorization": f"Bearer {token('alice', secret=OTHER_SECRET)}"}, "bad_signature"),
    "alg none": (
        {"Authorization": f"Bearer {jwt.encode({'sub': 'alice', 'exp': NOW + 3600}, None, algorithm='none')}"},
        "wrong_algorithm",
    ),
    "RS256 where the key is HS256": ({"Authorization": f"Bearer {signed(RSA, 'RS256')}"}, "wrong_algorithm"),
    "expired": ({"Authorization": f"Bearer {token('alice', iat=NOW - 7200, exp=NOW - 60)}"}, "expired"),
    "not yet valid (nbf)": ({"Authorization": f"Bearer {token('alice', nbf=NOW + 3000)}"}, "not_yet_valid"),
    "issued in the future (iat)": ({"Authorization": f"Bearer {token('alice', iat=NOW + 3000)}"}, "not_yet_valid"),
    "without sub": ({"Authorization": f"Bearer {token('alice', sub=None)}"}, "missing_claim"),
    "without exp": ({"Authorization": f"Bearer {token('alice', exp=None)}"}, "missing_claim"),
    "a sub that is not text": ({"Authorization": f"Bearer {token('alice', sub='x' * 129)}"}, "bad_subject"),
}


def buyer_requests(hold_id: str, order_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", "/api/holds", {"product_id": 1, "quantity": 1}),
        ("GET", f"/api/holds/{hold_id}", None),
        ("DELETE", f"/api/holds/{hold_id}", None),
        ("POST", "/api/orders", {"hold_id": hold_id}),
        ("GET", f"/api/orders/{order_id}", None),
        ("POST", f"/api/orders/{order_id}/cancel", None),
    ]


@pytest.mark.parametrize("case", list(REFUSED))
async def test_every_buyer_endpoint_refuses_a_bad_token_with_401_before_any_engine_call(
    jwt_app: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    app, http = jwt_app
    engine_sync.set_stock(1, 10, max_per_customer=5)
    held = (await http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=bearer("alice"))).json()
    headers, reason = REFUSED[case]
    spy = EngineCalls(app, monkeypatch)
    before = BUYER_TOKENS_REFUSED.labels(reason)._value.get()

    with capture_logs() as logged:
        for method, path, body in buyer_requests(held["hold_id"], held["hold_id"].replace("h1_", "o1_")):
            answer = await http.request(method, path, json=body, headers=headers)
            assert_problem(answer, 401, "invalid_buyer_token")
            assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'

    assert spy.calls == []
    assert engine_sync.snapshot(1).held == 1
    assert BUYER_TOKENS_REFUSED.labels(reason)._value.get() == before + 6
    assert [e["reason"] for e in logged if e["event"] == logs.BUYER_TOKEN_REFUSED] == [reason] * 6


async def test_a_valid_token_makes_its_sub_the_customer_and_a_different_customer_id_is_422(
    jwt_app: tuple[Starlette, httpx.AsyncClient], engine_sync: Engine
) -> None:
    _, http = jwt_app
    engine_sync.set_stock(1, 10, max_per_customer=5)

    plain = await http.post("/api/holds", json={"product_id": 1, "quantity": 1}, headers=bearer("alice"))
    same = await http.post(
        "/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "alice"}, headers=bearer("alice")
    )
    other = await http.post(
        "/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "bob"}, headers=bearer("alice")
    )

    assert plain.status_code == same.status_code == 201
    assert plain.json()["customer_id"] == same.json()["customer_id"] == "alice"
    assert_problem(other, 422, "customer_mismatch")
    assert engine_sync.snapshot(1).held == 2


async def test_buyer_auth_off_keeps_buyers_naming_themselves(client: httpx.AsyncClient, engine_sync: Engine) -> None:
    engine_sync.set_stock(1, 10)
    held = await client.post("/api/holds", json={"product_id": 1, "quantity": 1, "customer_id": "bob"})
    assert held.status_code == 201
    assert held.json()["customer_id"] == "bob"
    assert (await client.get(f"/api/holds/{held.json()['hold_id']}")).status_code == 200


# --- the keys: secret, PEM (RS256, ES256), issuer and audience ---------------------------------------------------


@pytest.mark.parametrize(("key", "algorithm"), [(RSA, "RS256"), (ec_key(), "ES256")])
async def test_a_pem_public_key_verifies_its_own_algorithm_only(key: Any, algorithm: str, tmp_path: Path) -> None:
    path = tmp_path / "buyer.pem"
    pem = public_pem(key)
    path.write_bytes(pem)
    verifier = auth(FLASHSALE_BUYER_AUTH="jwt", FLASHSALE_BUYER_JWT_PUBLIC_KEY=str(path))

    assert (await verifier.verify(signed(key, algorithm, "carol"))).sub == "carol"
    # HS256 signed with the public key itself (the classic confusion), another key, another algorithm: refused.
    confused = jwt.api_jws.PyJWS()
    confused._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    forged = confused.encode(json.dumps({"sub": "carol", "exp": NOW + 60}).encode(), pem, algorithm="HS256")
    assert await refusal(verifier, forged) == "wrong_algorithm"
    assert await refusal(verifier, signed(rsa_key() if algorithm == "RS256" else ec_key(), algorithm)) == (
        "bad_signature"
    )
    other = "ES256" if algorithm == "RS256" else "RS256"
    assert await refusal(verifier, signed(ec_key() if other == "ES256" else RSA, other)) == "wrong_algorithm"


async def test_issuer_and_audience_must_match_when_configured() -> None:
    verifier = auth(
        **JWT_ENV, FLASHSALE_BUYER_JWT_ISSUER="https://shop.example", FLASHSALE_BUYER_JWT_AUDIENCE="flashsale"
    )
    good = token("dave", iss="https://shop.example", aud="flashsale")
    assert (await verifier.verify(good)).sub == "dave"
    assert await refusal(verifier, token("dave", iss="https://evil.example", aud="flashsale")) == "wrong_issuer"
    assert await refusal(verifier, token("dave", aud="flashsale")) == "wrong_issuer"
    assert await refusal(verifier, token("dave", iss="https://shop.example", aud="other")) == "wrong_audience"
    assert await refusal(verifier, token("dave", iss="https://shop.example")) == "wrong_audience"
    # Without a configured audience, a token's own aud is not checked.
    assert (await auth(**JWT_ENV).verify(token("dave", aud="anything"))).sub == "dave"


async def test_nbf_and_exp_have_30_seconds_of_leeway() -> None:
    verifier = auth(**JWT_ENV)
    now = int(time.time())
    assert (await verifier.verify(token("erin", iat=now - 100, exp=now - 20))).sub == "erin"
    assert (await verifier.verify(token("erin", nbf=now + 20))).sub == "erin"
    assert await refusal(verifier, token("erin", iat=now - 100, exp=now - 40)) == "expired"
    assert await refusal(verifier, token("erin", nbf=now + 40)) == "not_yet_valid"


# --- the cache: a hash lookup once seen, until exp, bounded ------------------------------------------------------


async def test_a_verified_token_is_not_verified_again_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [float(int(time.time()))]
    verifier = BuyerAuth(load({"FLASHSALE_VAR_DIR": "/nonexistent", **JWT_ENV}), clock=lambda: now[0])
    decoded = []
    real = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(buyer_auth.jwt, "decode", counting)
    token_ = token("frank", exp=int(now[0]) + 3600)

    for _ in range(100):
        assert (await verifier.verify(token_)).sub == "frank"
    assert len(decoded) == 1
    now[0] += 3600  # the cache's clock reaches exp: verified again (by PyJWT's own clock), never served from it
    await verifier.verify(token_)
    assert len(decoded) == 2


async def test_a_cached_token_past_its_exp_and_leeway_is_refused() -> None:
    issued = int(time.time())
    now = [float(issued)]
    verifier = BuyerAuth(load({"FLASHSALE_VAR_DIR": "/nonexistent", **JWT_ENV}), clock=lambda: now[0])
    token_ = token("hana", iat=issued, exp=issued + 60)
    with freeze_time(datetime.fromtimestamp(issued, UTC)):
        assert (await verifier.verify(token_)).sub == "hana"
    assert verifier._cache  # cached while valid

    # Past exp and the 30 s of leeway, for the cache and PyJWT alike: the cached entry is never served.
    now[0] = issued + 60 + buyer_tokens.LEEWAY_SECONDS + 1
    with freeze_time(datetime.fromtimestamp(now[0], UTC)):
        assert await refusal(verifier, token_) == "expired"


async def test_another_token_string_is_verified_in_full_though_its_claims_are_cached() -> None:
    verifier = auth(**JWT_ENV)
    genuine = token("ivan", exp=NOW + 3600)
    assert (await verifier.verify(genuine)).sub == "ivan"
    # The same header and claims under another signature: no lookup by claims or prefix lets it through.
    head_and_claims, _, signature = genuine.rpartition(".")
    forged = f"{head_and_claims}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
    assert await refusal(verifier, forged) == "bad_signature"
    assert await refusal(verifier, token("ivan", exp=NOW + 3600, secret=OTHER_SECRET)) == "bad_signature"
    assert (await verifier.verify(genuine)).sub == "ivan"


async def test_a_key_withdrawn_from_the_jwks_forgets_the_tokens_it_verified() -> None:
    old, new = rsa_key(), rsa_key()
    idp = IdentityProvider([jwks(("k1", old))])
    verifier = await idp.verifier()
    by_old = signed(old, "RS256", "judy", headers={"kid": "k1"})
    assert (await verifier.verify(by_old)).sub == "judy"

    # The provider adds k2: a token naming it fetches the document again, and k1's tokens stay cached.
    idp.documents.append(jwks(("k1", old), ("k2", new)))
    idp.now = 31.0
    assert (await verifier.verify(signed(new, "RS256", "judy", headers={"kid": "k2"}))).sub == "judy"
    assert len(verifier._cache) == 2

    # Then it withdraws k1 (compromised, say): the next fetch forgets what k1 verified, so its token is refused.
    idp.documents.append(jwks(("k2", new)))
    idp.now = 62.0
    with capture_logs() as logged:
        assert await refusal(verifier, signed(new, "RS256", "judy", headers={"kid": "k3"})) == "unknown_key"
    assert [e["kids"] for e in logged if e["event"] == "buyer_jwks_keys_withdrawn"] == [["k1"]]
    assert await refusal(verifier, by_old) == "unknown_key"


async def test_a_key_replaced_under_the_same_kid_forgets_the_tokens_it_verified() -> None:
    old, new = rsa_key(), rsa_key()
    idp = IdentityProvider([jwks(("k1", old))])
    verifier = await idp.verifier()
    by_old = signed(old, "RS256", "kim", headers={"kid": "k1"})
    assert (await verifier.verify(by_old)).sub == "kim"

    idp.documents.append(jwks(("k1", new)))
    idp.now = 31.0
    assert await refusal(verifier, signed(new, "RS256", "kim", headers={"kid": "k9"})) == "unknown_key"
    assert await refusal(verifier, by_old) == "bad_signature"
    assert (await verifier.verify(signed(new, "RS256", "kim", headers={"kid": "k1"}))).sub == "kim"


async def test_the_cache_is_bounded() -> None:
    verifier = BuyerAuth(load({"FLASHSALE_VAR_DIR": "/nonexistent", **JWT_ENV}), max_cached=50)
    for i in range(500):
        await verifier.verify(token(f"buyer-{i}"))
        assert len(verifier._cache) <= 50


# --- JWKS ------------------------------------------------------------------------------------------------------


def jwks(*keys: tuple[str, Any]) -> bytes:
    entries = []
    for kid, key in keys:
        algorithm = RSAAlgorithm if isinstance(key, type(RSA)) else ECAlgorithm
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        entries.append({**jwk, "kid": kid, "use": "sig"})
    return json.dumps({"keys": entries}).encode()


JWKS_URL = "https://idp.example/jwks.json"


@dataclass
class IdentityProvider:
    """A provider's JWKS documents, the last one served at ``JWKS_URL``, and the clock of the verifier it makes."""

    documents: list[bytes]
    now: float = 0.0
    fetched: list[str] = field(default_factory=list)

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.documents[-1]

    async def verifier(self) -> BuyerAuth:
        """A started verifier on this provider's JWKS."""
        verifier = BuyerAuth(
            load({"FLASHSALE_BUYER_AUTH": "jwt", "FLASHSALE_BUYER_JWKS_URL": JWKS_URL}), fetch=self.fetch
        )
        assert isinstance(verifier.keys, buyer_auth.JwksKeys)
        verifier.keys.clock = lambda: self.now
        await verifier.start()
        return verifier


async def test_a_key_rotated_into_the_jwks_file_is_picked_up(tmp_path: Path) -> None:
    first, second = rsa_key(), ec_key()
    document = tmp_path / "jwks.json"
    document.write_bytes(jwks(("k1", first)))
    verifier = auth(FLASHSALE_BUYER_AUTH="jwt", FLASHSALE_BUYER_JWKS_URL=document.as_uri())
    await verifier.start()
    assert (await verifier.verify(signed(first, "RS256", "gina", headers={"kid": "k1"}))).sub == "gina"

    # The provider rotates: k2 is published beside k1, and a token signed with it arrives.
    document.write_bytes(jwks(("k1", first), ("k2", second)))
    assert isinstance(verifier.keys, buyer_auth.JwksKeys)
    verifier.keys._fetched_at = -1e9  # the last fetch was long ago
    assert (await verifier.verify(signed(second, "ES256", "gina", headers={"kid": "k2"}))).sub == "gina"
    # A kid's own algorithm only: k2 is an EC key.
    assert await refusal(verifier, signed(first, "RS256", "gina", headers={"kid": "k2"})) == "wrong_algorithm"


async def test_an_unknown_kid_fetches_the_jwks_again_at_most_every_30_seconds() -> None:
    key, rotated = rsa_key(), rsa_key()
    idp = IdentityProvider([jwks(("k1", key))])
    verifier = await idp.verifier()
    unknown = signed(rotated, "RS256", headers={"kid": "k9"})

    for _ in range(20):  # a flood of tokens naming an unknown kid: no fetch within 30 s of the last
        assert await refusal(verifier, unknown) == "unknown_key"
    assert len(idp.fetched) == 1
    idp.documents.append(jwks(("k1", key), ("k9", rotated)))
    idp.now = 29.0
    assert await refusal(verifier, unknown) == "unknown_key"
    idp.now = 30.0
    assert (await verifier.verify(unknown)).sub == "alice"
    assert idp.fetched == [JWKS_URL] * 2


async def test_a_jwks_that_cannot_be_read_refuses_tokens_and_is_tried_again_later(tmp_path: Path) -> None:
    document = tmp_path / "jwks.json"
    document.write_text("not json")
    verifier = auth(FLASHSALE_BUYER_AUTH="jwt", FLASHSALE_BUYER_JWKS_URL=document.as_uri())
    key = rsa_key()
    with capture_logs() as logged:
        await verifier.start()
    assert any(e["event"] == "buyer_jwks_unavailable" for e in logged)
    assert await refusal(verifier, signed(key, "RS256", headers={"kid": "k1"})) == "unknown_key"


# --- the settings: refused at start-up with a clear message -------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FLASHSALE_BUYER_AUTH": "yes"}, "FLASHSALE_BUYER_AUTH"),
        ({"FLASHSALE_BUYER_AUTH": "jwt"}, "FLASHSALE_BUYER_AUTH"),
        ({"FLASHSALE_BUYER_JWT_SECRET": "too-short"}, "FLASHSALE_BUYER_JWT_SECRET"),
        ({"FLASHSALE_BUYER_JWT_PUBLIC_KEY": "/no/such/key.pem"}, "FLASHSALE_BUYER_JWT_PUBLIC_KEY"),
        ({"FLASHSALE_BUYER_JWKS_URL": "ftp://idp.example/jwks"}, "FLASHSALE_BUYER_JWKS_URL"),
        ({"FLASHSALE_BUYER_JWKS_URL": "file:///no/such/jwks.json"}, "FLASHSALE_BUYER_JWKS_URL"),
        (
            {"FLASHSALE_BUYER_JWT_SECRET": BUYER_SECRET, "FLASHSALE_BUYER_JWKS_URL": "https://idp.example/j"},
            "FLASHSALE_BUYER_JWKS_URL",
        ),
        ({"FLASHSALE_RATE_LIMIT_PER_BUYER_PER_SECOND": "-1"}, "FLASHSALE_RATE_LIMIT_PER_BUYER_PER_SECOND"),
    ],
)
def test_invalid_buyer_auth_settings_are_refused_naming_the_variable(env: dict[str, str], variable: str) -> None:
    from shared.settings import ConfigError

    with pytest.raises(ConfigError) as refused:
        load({"FLASHSALE_VAR_DIR": "/nonexistent", **env})
    assert refused.value.variable == variable


@pytest.mark.parametrize("kind", ["not a key", "a weak RSA key", "an EC key off P-256"])
def test_a_public_key_file_that_cannot_verify_rs256_or_es256_is_refused(kind: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from shared.settings import ConfigError

    path = tmp_path / "key.pem"
    if kind == "not a key":
        path.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    elif kind == "a weak RSA key":
        path.write_bytes(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    else:
        path.write_bytes(public_pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(ConfigError, match="FLASHSALE_BUYER_JWT_PUBLIC_KEY"):
        load({"FLASHSALE_BUYER_AUTH": "jwt", "FLASHSALE_BUYER_JWT_PUBLIC_KEY": str(path)})


def test_the_secret_flashsale_up_keeps_is_used_when_no_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "buyer_jwt_secret").write_text(BUYER_SECRET + "\n")
    settings: Settings = load({"FLASHSALE_VAR_DIR": str(tmp_path), "FLASHSALE_BUYER_AUTH": "jwt"})
    assert settings.buyer_jwt_secret == BUYER_SECRET
    assert settings.buyer_auth == "jwt"


async def test_a_jwks_served_over_http_is_fetched_and_refetched_for_a_new_kid() -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.support.browser import serve_in_thread

    first, second = rsa_key(), ec_key()
    published = [jwks(("k1", first))]

    async def document(request: Any) -> Response:
        return Response(published[-1], media_type="application/json")

    with serve_in_thread(Starlette(routes=[Route("/jwks.json", document)])) as base:
        verifier = auth(FLASHSALE_BUYER_AUTH="jwt", FLASHSALE_BUYER_JWKS_URL=f"{base}/jwks.json")
        await verifier.start()
        assert (await verifier.verify(signed(first, "RS256", "hana", headers={"kid": "k1"}))).sub == "hana"
        published.append(jwks(("k1", first), ("k2", second)))
        assert isinstance(verifier.keys, buyer_auth.JwksKeys)
        verifier.keys._fetched_at = -1e9
        assert (await verifier.verify(signed(second, "ES256", "hana", headers={"kid": "k2"}))).sub == "hana"
