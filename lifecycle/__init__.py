"""The core: tenancy, row-level security, customers and orders, ingestion, events, the API, storefronts."""
