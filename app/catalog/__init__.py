"""The brand's SKU catalog: what a till's SKU code is, and which category it belongs to."""
