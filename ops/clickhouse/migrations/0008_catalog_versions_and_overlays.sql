-- Live catalog updates and per-tenant price overlays (pricing/overlays.py). Each ledger row
-- names the catalog content version that priced it (`catalog_hash`: sha256 of the catalog's
-- files, pricing/catalog.py bundle_hash), and keeps the list price beside the tenant's:
-- `cost` is what the tenant pays (the rollups add it up), `list_cost` the catalog's price,
-- `price_overlay` the overlay rule that made the difference ('' for none). Rows written before
-- this migration read list_cost = cost.
ALTER TABLE ledger
    ADD COLUMN IF NOT EXISTS list_cost Decimal(38, 12) DEFAULT cost AFTER cost,
    ADD COLUMN IF NOT EXISTS price_overlay LowCardinality(String) DEFAULT '' AFTER list_cost,
    ADD COLUMN IF NOT EXISTS catalog_hash LowCardinality(String) DEFAULT '' AFTER catalog_version;
