"""The Lua scripts as files: contracts, the shared prelude, and keys that come only through KEYS."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from engine.keys import product_keys
from engine.scripts import NAMES, PRODUCT_SCRIPTS, SALE_SCRIPTS, source

LUA = files("engine") / "lua"


def lua(name: str) -> str:
    return (LUA / f"{name}.lua").read_text(encoding="utf-8")


def test_every_script_file_is_registered() -> None:
    on_disk = {p.name.removesuffix(".lua") for p in LUA.iterdir() if p.name.endswith(".lua")}

    assert on_disk - {"_prelude"} == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_script_starts_with_its_contract(name: str) -> None:
    header = []
    for line in lua(name).splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    text = "\n".join(header)

    assert header[0].startswith(f"-- {name}: ")
    for part in ("KEYS", "ARGV", "returns"):
        assert part in text, f"{name}.lua's header does not describe {part}"


@pytest.mark.parametrize("name", PRODUCT_SCRIPTS)
def test_each_product_script_is_the_prelude_then_its_file(name: str) -> None:
    assert source(name) == lua("_prelude") + "\n" + lua(name)


@pytest.mark.parametrize("name", SALE_SCRIPTS)
def test_each_sale_wide_script_is_its_file_alone_on_one_key(name: str) -> None:
    code = lua(name)

    assert source(name) == code
    assert re.search(r"^local K_CLAIM = KEYS\[1\]$", code, re.MULTILINE)
    # claim_transaction also reads the claim store's completeness mark (one Redis only), and only reads it.
    marked = name == "claim_transaction"
    assert set(re.findall(r"KEYS\[(\d+)\]", code)) == ({"1", "2"} if marked else {"1"})
    for command, first in re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", code):
        assert first.strip() == "K_CLAIM" or (marked and (command, first.strip()) == ("GET", "K_MARK"))


@pytest.mark.parametrize("name", ["_prelude", "../client", "unknown"])
def test_source_refuses_names_that_are_not_scripts(name: str) -> None:
    with pytest.raises(KeyError):
        source(name)


def test_the_prelude_reads_exactly_the_product_keys() -> None:
    indexes = {int(i) for i in re.findall(r"KEYS\[(\d+)\]", lua("_prelude"))}

    assert indexes == set(range(1, len(product_keys(1).all()) + 1))


@pytest.mark.parametrize("name", PRODUCT_SCRIPTS)
def test_scripts_name_no_key_of_their_own(name: str) -> None:
    code = lua(name)

    assert "KEYS[" not in code  # keys are read once, in the prelude
    # A command with a subcommand (XINFO STREAM key) names its key after the subcommand.
    calls = re.findall(r"redis\.call\('(\w+)',\s*(?:'(?:STREAM)',\s*)?([^,)]+)", source(name))
    for command, first in calls:
        assert re.fullmatch(r"K_[A-Z_]+|TOMB_HASH\[.+", first.strip()), f"{name}: {command} on {first}"


@pytest.mark.parametrize("name", [*NAMES, "_prelude"])
def test_scripts_never_compile_code_at_run_time(name: str) -> None:
    assert not re.search(r"\b(loadstring|load|dofile|require)\s*\(", lua(name))
