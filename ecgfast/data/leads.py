"""The one table of lead names and the one table of units, for corpus building and inference alike.

Lead names are matched case-insensitively, blanks stripped, and the Einthoven aliases some
machines write (``DI``/``D1`` for I, ``DII``/``D2`` for II, ``DIII``/``D3`` for III) name the
same lead; ``lead_key`` gives a name's canonical spelling (``ecgfast.LEADS``'s: ``I``, ...,
``AVR``, ..., ``V6``). ``MLII`` is not an alias: the modified lead II of Holter and MIT-BIH
records is taken from torso electrodes, not the standard limb placement, so taking it as II
would silently mix two different signals.

Units are a voltage unit, matched case-insensitively (``mV``, ``uV``, ``µV``, ``V``, ``nV``);
``unit_factor(u)`` is what a signal in ``u`` is multiplied by to be in mV.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ecgfast import LEADS
from ecgfast.base.errors import ConfigError, DataError

LEAD_ALIASES = {"DI": "I", "DII": "II", "DIII": "III", "D1": "I", "D2": "II", "D3": "III"}

# Volts per unit: x_mV = x * UNITS[unit] / UNITS["mv"] (keys lower case: ``unit_key``).
UNITS = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "nv": 1e-9}
UNITS_HELP = "V, mV, uV (µV)"


def lead_key(name) -> str:
    """The canonical spelling of a lead name: stripped, upper case, aliases resolved (``"dii"`` -> ``"II"``)."""
    key = str(name).strip().upper()
    return LEAD_ALIASES.get(key, key)


def lead_order(names: Sequence, where: str, leads: Sequence[str] = LEADS) -> np.ndarray:
    """Row index in ``names`` of each of ``leads`` (default the standard 12, I to V6), by ``lead_key``.

    ``DataError`` naming ``where`` when a lead is named twice or one of ``leads`` is missing
    (no masking: every window in a corpus has all 12 leads).
    """
    keys = [lead_key(n) for n in names]
    if len(set(keys)) != len(keys):
        raise DataError(f"{where}: lead names {list(names)} repeat a lead")
    missing = [lead for lead in leads if lead_key(lead) not in keys]
    if missing:
        raise DataError(f"{where}: lacks lead(s) {missing} of the standard 12 (has {list(names)})")
    return np.array([keys.index(lead_key(lead)) for lead in leads])


def unit_key(units) -> str:
    """A unit's table key: stripped, lower case."""
    return str(units).strip().lower()


def is_unit(units) -> bool:
    return unit_key(units) in UNITS


def unit_factor(units) -> float:
    """Multiply by this to turn ``units`` into mV; ``ConfigError`` for a unit not in ``UNITS``."""
    key = unit_key(units)
    if key not in UNITS:
        raise ConfigError(f"unknown units {units!r}: expected one of {UNITS_HELP}")
    return UNITS[key] / UNITS["mv"]


__all__ = ["LEADS", "LEAD_ALIASES", "UNITS", "is_unit", "lead_key", "lead_order", "unit_factor", "unit_key"]
