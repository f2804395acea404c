from engine import Engine


def test_reserve_takes_units_from_available(engine: Engine) -> None:
    engine.set_stock(1, 10)
    hold = engine.reserve(1, 3)
    assert hold.available == 7
    snap = engine.snapshot(1)
    assert (snap.total, snap.available, snap.held) == (10, 7, 3)
