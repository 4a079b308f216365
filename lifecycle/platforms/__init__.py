"""Storefront platforms: their webhook payloads, mapped onto our neutral input shapes.

`shopify` and `woocommerce` are pure functions from a parsed payload to `OrderIn`,
`CustomerIn` and `RefundIn` (no database, no clock), so each platform quirk is a unit
test. `ingest` is the write side: one transaction per delivery that stores the raw
body and calls `lifecycle.services`. `common` holds the parsing both platforms share.
"""
