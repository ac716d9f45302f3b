"""Pricing errors: an event that cannot be priced is rejected with a reason, never priced 0."""


class PricingError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CatalogError(ValueError):
    """A catalog file that does not follow pricing/catalogs/FORMAT.md."""
