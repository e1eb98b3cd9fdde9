"""Documents: receipts and tour summaries (data → HTML → PDF). Imports only storage."""

__all__: list[str] = []
