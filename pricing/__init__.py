"""Pure pricing: catalogs as data, Decimal arithmetic, offline token counting. No I/O beyond
reading catalogs (and the tokenizer's vocabulary cache)."""

from pricing.bundle import load_catalog
from pricing.catalog import Catalog, Product
from pricing.engine import money_str, price_event
from pricing.errors import CatalogError, PricingError

__all__ = ["Catalog", "CatalogError", "Product", "PricingError", "load_catalog", "money_str", "price_event"]
