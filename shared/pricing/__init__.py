"""The tariff price calculator: pure functions, Decimal money (rules and their spec sources: README.md)."""

from shared.pricing.calculator import price_session
from shared.pricing.priced import Priced, PricedDimension, PricedPeriod, PricingError, StepRounding
from shared.pricing.rules import decimal_of

__all__ = [
    "Priced",
    "PricedDimension",
    "PricedPeriod",
    "PricingError",
    "StepRounding",
    "decimal_of",
    "price_session",
]
