"""Meta's WhatsApp Cloud API OpenAPI spec (v23.0, MIT licence, vendored unchanged)."""
