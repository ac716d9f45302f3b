"""Pricing errors: an event that cannot be priced is rejected with a reason, never priced 0."""

from schemas.errors import ConfigurationError, InputRejected


class PricingError(InputRejected):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CatalogError(ConfigurationError):
    """A catalog file that does not follow pricing/catalogs/FORMAT.md."""
